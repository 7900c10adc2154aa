"""Delivering one reply with retries, and the records that report how it went (pure logic)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from omnirouter.channels.delivery import (
    Delivery,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from omnirouter.events import (
    Content,
    DeadLetter,
    Direction,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
    derived_event_id,
)
from omnirouter.logs import get_logger
from omnirouter.settings import OutboundSettings

log = get_logger(__name__)

STAGE = "dispatcher"
NO_PROVIDER = "omnirouter"
"""The provider named on the status of a reply no provider was chosen for (e.g. voice)."""

Sleep = Callable[[float], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How delivering one reply ended."""

    delivered: bool
    provider: str
    message_id: str | None = None
    status: str = "sent"
    """Either "sent" or "queued" when delivered, else "failed"."""
    reason: str = ""
    attempts: int = 0
    exhausted: bool = False
    """Failed with a transient error on the last allowed attempt."""

    @classmethod
    def from_delivery(cls, delivery: Delivery, *, attempts: int) -> DeliveryOutcome:
        """A delivery the provider accepted."""
        return cls(
            delivered=True,
            provider=delivery.provider,
            message_id=delivery.provider_message_id,
            status=delivery.status,
            attempts=attempts,
        )

    @classmethod
    def failed(
        cls, provider: str, reason: str, *, attempts: int, exhausted: bool = False
    ) -> DeliveryOutcome:
        """A delivery that did not happen, and why."""
        return cls(
            delivered=False,
            provider=provider,
            status="failed",
            reason=reason,
            attempts=attempts,
            exhausted=exhausted,
        )


def backoff_delay(attempt: int, *, base_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (0-based): doubling, capped."""
    if attempt >= 64:  # 2**64 * base is past any cap; avoid float overflow on absurd counts
        return max_s
    return float(min(base_s * 2**attempt, max_s))


def backoff_schedule(settings: OutboundSettings) -> list[float]:
    """The waits between the attempts of one delivery (one fewer than ``max_attempts``)."""
    return [
        backoff_delay(attempt, base_s=settings.backoff_base_s, max_s=settings.backoff_max_s)
        for attempt in range(settings.max_attempts - 1)
    ]


def longest_delivery_s(settings: OutboundSettings) -> float:
    """An upper bound on one delivery with every retry: how long a claim on it must last."""
    margin_s = 30.0
    return (
        settings.max_attempts * settings.request_timeout_s
        + sum(backoff_schedule(settings))
        + margin_s
    )


async def deliver_with_retries(
    attempt: Callable[[], Awaitable[Delivery]],
    *,
    provider: str,
    settings: OutboundSettings,
    sleep: Sleep,
) -> DeliveryOutcome:
    """Call ``attempt`` until it delivers, retrying transient failures with backoff.

    A permanent failure ends at once; a transient one after ``settings.max_attempts``. An
    unexpected exception (a sender's bug) is a permanent failure: it must not stop the stream.
    """
    schedule = backoff_schedule(settings)
    for number in range(settings.max_attempts):
        try:
            delivery = await attempt()
        except PermanentDeliveryError as exc:
            return DeliveryOutcome.failed(provider, exc.reason, attempts=number + 1)
        except TransientDeliveryError as exc:
            if number == settings.max_attempts - 1:
                reason = f"gave up after {number + 1} attempts: {exc.reason}"
                return DeliveryOutcome.failed(provider, reason, attempts=number + 1, exhausted=True)
            log.warning(
                "delivery failed; retrying",
                provider=provider,
                attempt=number + 1,
                error=exc.reason,
                backoff_s=schedule[number],
            )
            await sleep(schedule[number])
        except Exception as exc:
            log.exception("sender failed unexpectedly", provider=provider)
            reason = f"sender error: {type(exc).__name__}: {exc}"
            return DeliveryOutcome.failed(provider, reason, attempts=number + 1)
        else:
            return DeliveryOutcome.from_delivery(delivery, attempts=number + 1)
    raise AssertionError("unreachable: max_attempts >= 1")  # pragma: no cover


def status_text(event: InteractionEvent, outcome: DeliveryOutcome) -> str:
    """What the agent reads on the timeline about the delivery."""
    if not outcome.delivered:
        return f"Not delivered: {outcome.reason}"
    if outcome.status == "queued":
        return f"Delivered by {event.channel} (waiting for the customer to reconnect)"
    return f"Delivered by {event.channel}"


def status_record(
    event: InteractionEvent, outcome: DeliveryOutcome, *, at: datetime
) -> InteractionEvent:
    """The ``delivery_status`` event reporting ``outcome`` for ``event``.

    Its id is derived from the reply's and the outcome, so a redelivered reply reports the same
    outcome under the same id (consumers dedupe it), while a reply that failed and later went
    out on redelivery reports both.
    """
    outcome_key = "delivered" if outcome.delivered else "failed"
    return InteractionEvent(
        event_id=derived_event_id(event.event_id, f"delivery:{outcome_key}"),
        causation_id=event.event_id,
        tenant=event.tenant,
        occurred_at=at,
        received_at=at,
        channel=event.channel,
        direction=Direction.OUTBOUND,
        kind=InteractionKind.DELIVERY_STATUS,
        identifiers=event.identifiers,
        customer_id=event.customer_id,
        case_id=event.case_id,
        content=Content(text=status_text(event, outcome)),
        provider=ProviderRefs(
            provider=outcome.provider,
            message_id=outcome.message_id,
            raw_status="sent" if outcome.delivered else "failed",
        ),
    )


def failure_dead_letter(
    raw_value: bytes,
    raw_key: bytes | None,
    event: InteractionEvent,
    outcome: DeliveryOutcome,
    *,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
) -> DeadLetter:
    """The dead letter keeping a reply that could not be delivered, byte for byte."""
    kind = "retries_exhausted" if outcome.exhausted else "permanent"
    return DeadLetter.for_payload(
        raw_value,
        raw_key,
        stage=STAGE,
        reason=outcome.reason[:2000] or "not delivered",
        error_type=f"DeliveryFailed.{kind}",
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        tenant=event.tenant,
        causation_id=event.event_id,
    )
