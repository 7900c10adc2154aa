"""The inbound SMTP listener: mail for the support domains, straight from the sending MTA.

The SMTP reply is the acknowledgement: 250 only once Kafka acknowledged the event, 451 (the
sender keeps the message and retries) when it did not, 550 for a message that makes no event
(after its raw bytes were dead-lettered), 552 for one past the size limit.

No duplicate check is needed here beyond the event id: an MTA that retries after a 451 or a
lost 250 resends the same message, whose Message-ID (or, without one, bytes) gives the same
event id, so downstream stages drop the repeat.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from omnirouter.channels.email import mime
from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.tenancy import TenantDirectory
from omnirouter.ingress.publishing import IngressPublisher, PublishFailed
from omnirouter.logs import get_logger
from omnirouter.settings import Settings

log = get_logger(__name__)

PROVIDER = "smtp"
ACCEPTED = "250 Message accepted"
TRY_AGAIN = "451 4.3.0 Try again later"
TOO_BIG = "552 5.3.4 Message too big"
_REPLY_TEXT = re.compile(r"[^\x20-\x7e]+")


def _rejected(reason: str) -> str:
    # One printable ASCII line: a reply is parsed by the sending MTA, and bounced to a person.
    return f"550 5.6.0 {_REPLY_TEXT.sub(' ', reason).strip()[:200]}"


class InboundMail:
    """The aiosmtpd handler: every message's DATA becomes an event on Kafka, or a refusal."""

    def __init__(
        self,
        publisher: IngressPublisher,
        *,
        max_bytes: int,
        directory: TenantDirectory | None = None,
    ) -> None:
        """Publish through ``publisher``; refuse messages over ``max_bytes``.

        ``directory`` attributes each message to the tenant owning its first known RCPT TO.
        """
        self._publisher = publisher
        self._max_bytes = max_bytes
        self._tenants = directory if directory is not None else TenantDirectory()

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd looks up
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Publish the message; the reply says whether the sender may forget it."""
        raw = envelope.original_content or b""
        if len(raw) > self._max_bytes:
            return TOO_BIG
        try:
            return await self._deliver(raw, envelope)
        except Exception:  # an unexpected failure must not be a 5xx: the sender would bounce
            log.exception("inbound mail failed", peer=str(session.peer))
            return TRY_AGAIN

    async def _deliver(self, raw: bytes, envelope: Envelope) -> str:
        try:
            # RCPT TO, not the To header: the envelope is where the sending MTA delivered it.
            tenant = self._tenants.for_email(envelope.rcpt_tos)
            event = mime.normalize_mime(raw, datetime.now(UTC), provider=PROVIDER, tenant=tenant)
        except NormalizationError as exc:
            reason = str(exc)
            try:
                await self._publisher.dead_letter(
                    raw,
                    reason=reason,
                    error_type="Unnormalizable",
                    key=PROVIDER,
                    headers={
                        "provider": PROVIDER,
                        "mail_from": envelope.mail_from or "",
                        "rcpt_to": ",".join(envelope.rcpt_tos)[:1000],
                    },
                )
            except PublishFailed as failed:
                log.warning("dead letter not written", error=str(failed))
                return TRY_AGAIN
            return _rejected(reason)
        try:
            await self._publisher.publish(event)
        except PublishFailed as exc:
            log.warning("publish failed", provider=PROVIDER, error=str(exc))
            return TRY_AGAIN
        return ACCEPTED


class _Controller(Controller):
    """aiosmtpd's controller, able to listen on port 0 (a free port, as tests use)."""

    def _trigger_server(self) -> None:
        # The base class connects to self.port to make sure the server answers; with port 0
        # that is the port the OS chose, known only once the socket is bound.
        server: Any = self.server
        if self.port == 0 and server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated


@dataclass
class SmtpListener:
    """A running SMTP listener."""

    controller: Controller

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when configured as 0)."""
        return int(self.controller.port)

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self.controller.hostname)

    def stop(self) -> None:
        """Stop accepting mail and close the socket."""
        self.controller.stop()


def start_smtp_listener(settings: Settings, publisher: IngressPublisher) -> SmtpListener:
    """Listen on ``settings.ingress.smtp_host``/``smtp_port`` in a background thread.

    Callers decide with ``settings.ingress.smtp_enabled`` whether to start it.
    """
    ingress = settings.ingress
    controller = _Controller(
        InboundMail(
            publisher,
            max_bytes=ingress.max_body_bytes,
            directory=TenantDirectory.from_settings(settings),
        ),
        hostname=ingress.smtp_host,
        port=ingress.smtp_port,
        # aiosmtpd answers 552 itself once DATA grows past this, without buffering the rest.
        data_size_limit=ingress.max_body_bytes,
        enable_SMTPUTF8=True,
        # Without it aiosmtpd resolves its own FQDN for every connection's greeting.
        server_hostname=socket.gethostname(),
    )
    controller.start()
    log.info("smtp listener started", host=controller.hostname, port=controller.port)
    return SmtpListener(controller)
