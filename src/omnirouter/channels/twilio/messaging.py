"""Twilio Messaging webhooks (SMS, MMS and WhatsApp) as interaction events (pure).

Payload reference: https://www.twilio.com/docs/messaging/guides/webhook-request
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
    Attachment,
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
)
from omnirouter.ingress.publishing import provider_event_id

PROVIDER = "twilio"
_WHATSAPP = "whatsapp:"


def message_id(form: Mapping[str, str]) -> str | None:
    """Twilio's id of the message (what its retries share)."""
    return form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")


def normalize_message(
    form: Mapping[str, str], received_at: datetime, *, tenant: str = "default"
) -> InteractionEvent:
    """An inbound SMS or WhatsApp message.

    Raises:
        NormalizationError: no sender or no message id.
    """
    sender = (form.get("From") or "").strip()
    sid = message_id(form)
    if not sender:
        raise NormalizationError("Twilio message without From")
    if not sid:
        raise NormalizationError("Twilio message without MessageSid")
    whatsapp = sender.lower().startswith(_WHATSAPP)
    number = sender[len(_WHATSAPP) :] if whatsapp else sender
    attachments = []
    try:
        media = int(form.get("NumMedia") or 0)
    except ValueError:
        media = 0
    for index in range(min(media, 10)):
        url = form.get(f"MediaUrl{index}")
        if url:
            attachments.append(
                Attachment(
                    filename=url.rsplit("/", 1)[-1] or f"media{index}",
                    content_type=form.get(f"MediaContentType{index}") or "application/octet-stream",
                    size_bytes=0,  # Twilio does not say; the media stays at the URL
                    url=url,
                )
            )
    return InteractionEvent(
        event_id=provider_event_id(PROVIDER, sid),
        tenant=tenant,
        occurred_at=received_at,
        received_at=received_at,
        channel=Channel.WHATSAPP if whatsapp else Channel.SMS,
        direction=Direction.INBOUND,
        kind=InteractionKind.MESSAGE,
        identifiers=(
            Identifier(
                kind=IdentifierKind.PHONE, value=number, provider="whatsapp" if whatsapp else None
            ),
        ),
        display_name=(form.get("ProfileName") or None),
        content=Content(text=form.get("Body") or "", attachments=tuple(attachments)),
        provider=ProviderRefs(
            provider=PROVIDER,
            message_id=sid,
            conversation_id=form.get("MessagingServiceSid") or None,
            raw_status=form.get("SmsStatus") or None,
        ),
    )
