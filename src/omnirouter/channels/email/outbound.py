"""Replies by e-mail through an SMTP relay, threaded into the customer's conversation."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from omnirouter.channels.delivery import (
    Delivery,
    OutboundClients,
    PermanentDeliveryError,
    TransientDeliveryError,
    recipient,
)
from omnirouter.channels.tenancy import reply_sender
from omnirouter.events import IdentifierKind, InteractionEvent
from omnirouter.settings import OutboundSettings, Settings

PROVIDER = "smtp"


def _bracketed(message_id: str) -> str:
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def message_id_for(event: InteractionEvent, email_from: str) -> str:
    """The Message-ID of the reply: derived from the event id, so a resend keeps it."""
    domain = parseaddr(email_from)[1].rpartition("@")[2] or "omnirouter.invalid"
    return f"<{event.event_id}@{domain}>"


def build_message(
    event: InteractionEvent, settings: OutboundSettings, *, email_from: str | None = None
) -> EmailMessage:
    """The e-mail for ``event``, with In-Reply-To and References when it answers a message.

    ``email_from`` (the tenant's own address) replaces ``settings.email_from`` when given.

    Raises:
        PermanentDeliveryError: no e-mail address, nothing to send, or a header that cannot
            be written (e.g. a line break in the subject).
    """
    to = recipient(event, IdentifierKind.EMAIL)
    content = event.content
    if not content.text.strip() and not (content.html or "").strip():
        raise PermanentDeliveryError("nothing to send: the reply has no text")
    sender = email_from or settings.email_from
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = to.value
        message["Subject"] = content.subject or settings.email_default_subject
        message["Date"] = format_datetime(event.occurred_at.astimezone(UTC))
        message["Message-ID"] = message_id_for(event, sender)
        refs = event.provider
        references = [_bracketed(r) for r in refs.references if r.strip()]
        if refs.in_reply_to:
            parent = _bracketed(refs.in_reply_to)
            message["In-Reply-To"] = parent
            if parent not in references:
                references.append(parent)
        if references:
            message["References"] = " ".join(references)
        message.set_content(content.text)
        if content.html:
            message.add_alternative(content.html, subtype="html")
    except (ValueError, TypeError) as exc:  # the email package's refusal of a bad header
        raise PermanentDeliveryError(f"cannot write the e-mail: {exc}") from exc
    return message


def _smtp_failure(exc: smtplib.SMTPException) -> TransientDeliveryError | PermanentDeliveryError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = f"recipient refused: {exc.recipients}"
        if codes and all(code >= 500 for code in codes):
            return PermanentDeliveryError(detail)
        return TransientDeliveryError(detail)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentDeliveryError(f"SMTP relay: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException) and not isinstance(
        exc, smtplib.SMTPConnectError
    ):
        error = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        detail = f"SMTP relay answered {exc.smtp_code}: {error}"
        if 500 <= exc.smtp_code < 600:
            return PermanentDeliveryError(detail)
        return TransientDeliveryError(detail)
    # Disconnected, could not connect, or anything else the relay may not do next time.
    return TransientDeliveryError(f"SMTP relay: {type(exc).__name__}: {exc}")


def _submit(message: EmailMessage, settings: OutboundSettings) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.request_timeout_s
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)


async def send(
    event: InteractionEvent, settings: Settings, clients: OutboundClients | None = None
) -> Delivery:
    """Send ``event`` as an e-mail; the Message-ID we generate is the id.

    ``smtplib`` blocks, so it runs in a thread; ``clients`` is not needed.

    Raises:
        TransientDeliveryError: relay unreachable, timed out, or answered 4xx.
        PermanentDeliveryError: no relay configured, nowhere to send, or answered 5xx.
    """
    outbound = settings.outbound
    if not outbound.smtp_host:
        raise PermanentDeliveryError("e-mail is not configured (OMNIROUTER_OUTBOUND__SMTP_HOST)")
    message = build_message(
        event, outbound, email_from=reply_sender(settings, event.tenant, "email")
    )
    try:
        await asyncio.to_thread(_submit, message, outbound)
    except smtplib.SMTPException as exc:
        raise _smtp_failure(exc) from exc
    except OSError as exc:  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
        raise TransientDeliveryError(
            f"SMTP relay unreachable: {type(exc).__name__}: {exc}"
        ) from exc
    return Delivery(PROVIDER, str(message["Message-ID"]))
