"""The one path every inbound payload takes: duplicate check, publish, answer.

Channel routes parse and verify their provider's format, then hand the normalized event (or
the reason it could not be normalized) to :class:`Intake`, which owns the HTTP semantics:
2xx only after Kafka acknowledged the write, 503 with Retry-After when it could not be made,
422 with the reason (and the raw payload dead-lettered) when the payload makes no event.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, status

from omnirouter.events import InteractionEvent, encode
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.publishing import EventTooLarge, IngressPublisher, PublishFailed
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_ingress, observed

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the gateway did with a payload."""

    event: InteractionEvent | None
    duplicate: bool


class Intake:
    """Publishes normalized events with the gateway's delivery guarantees."""

    def __init__(
        self, publisher: IngressPublisher, retries: ProviderRetries, *, retry_after_s: int
    ) -> None:
        """Publish through ``publisher``; skip retries known to ``retries``."""
        self.publisher = publisher
        self._retries = retries
        self._retry_after = str(retry_after_s)

    async def aclose(self) -> None:
        """Finish the Redis writes still deferred; the publisher is closed by its owner."""
        await self._retries.aclose()

    def unavailable(self, why: str) -> HTTPException:
        """503 with Retry-After: providers retry, so nothing is lost."""
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"not accepted, try again: {why}",
            headers={"Retry-After": self._retry_after},
        )

    @observed("ingress")
    async def accept(
        self, event: InteractionEvent, *, provider: str, message_id: str | None
    ) -> Accepted:
        """Publish ``event`` unless this provider message was published before.

        Raises:
            HTTPException: 503 when Kafka did not acknowledge the write.
        """
        if message_id and await self._retries.already_published(provider, message_id):
            count_ingress(provider, "duplicate", channel=event.channel)
            return Accepted(event, duplicate=True)
        try:
            await self.publisher.publish(event)
        except EventTooLarge as exc:
            log.warning("event too large", provider=provider, size=exc.size, limit=exc.limit)
            raise await self.too_large(event, exc, provider=provider) from None
        except PublishFailed as exc:
            log.warning("publish failed", provider=provider, error=str(exc))
            count_ingress(provider, "unavailable", channel=event.channel)
            raise self.unavailable("the event store did not acknowledge the write") from None
        if message_id:
            self._retries.remember(provider, message_id)
        count_ingress(provider, "accepted", channel=event.channel)
        return Accepted(event, duplicate=False)

    async def too_large(
        self, event: InteractionEvent, exc: EventTooLarge, *, provider: str
    ) -> HTTPException:
        """An event no Kafka record can hold: dead-letter it (truncated) and build the 413.

        Raises:
            HTTPException: 503 when even the dead letter could not be written.
        """
        try:
            await self.publisher.dead_letter(
                encode(event),
                reason=str(exc),
                error_type="EventTooLarge",
                key=event.routing_key,
                headers={"provider": provider},
            )
        except PublishFailed:
            raise self.unavailable("the event store did not acknowledge the write") from None
        count_ingress(provider, "rejected", channel=event.channel)
        return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc))

    async def reject(
        self, raw: bytes, *, provider: str, reason: str, key: str = ""
    ) -> HTTPException:
        """A payload that makes no event: dead-letter it and build the 422 to raise.

        Raises:
            HTTPException: 503 when even the dead letter could not be written (so the provider
                retries rather than the payload vanishing).
        """
        try:
            await self.publisher.dead_letter(
                raw,
                reason=reason,
                error_type="Unnormalizable",
                key=key or provider,
                headers={"provider": provider},
            )
        except PublishFailed:
            raise self.unavailable("the event store did not acknowledge the write") from None
        count_ingress(provider, "rejected")
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, reason)
