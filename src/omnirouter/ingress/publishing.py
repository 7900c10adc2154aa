"""Writing to Kafka from request handlers: acknowledged by every in-sync replica, or an error.

kafka-python's producer is synchronous. Records reach it through a :class:`SendQueue` thread
(its ``send`` may wait for topic metadata) and their acknowledgements come back from its sender
thread through :class:`Acknowledgements`, both a burst at a time. Every request in flight
shares the producer's batches, and none holds a thread while it waits.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from kafka.errors import KafkaError

from omnirouter.connections import create_producer
from omnirouter.events import (
    DeadLetter,
    InteractionEvent,
    encode,
    topic_spec,
)
from omnirouter.events.oversize import RECORD_FRAMING_BYTES, oversized_dead_letter
from omnirouter.ingress.handover import Acknowledgements, HandoverClosed, SendQueue, expire
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_dead_letter, count_events

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings

INGRESS_STAGE = "ingress"
log = get_logger(__name__)


class PublishFailed(Exception):  # noqa: N818 - maps to HTTP 503, reads as the outcome
    """Kafka did not acknowledge the write in time; the caller must not report success."""


KAFKA_MAX_REQUEST_BYTES = 1_048_576
"""kafka-python's default ``max_request_size`` (a producer without a config uses it)."""


class EventTooLarge(ValueError):  # noqa: N818 - maps to HTTP 413, reads as the outcome
    """The event is bigger than one Kafka record may be: no retry can ever store it."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the message makes a {size}-byte event; the event store takes at most {limit} bytes"
        )
        self.size = size
        self.limit = limit


def provider_event_id(provider: str, message_id: str) -> uuid.UUID:
    """The event id of a provider's message: the same for every retry of it.

    Downstream stages are idempotent on event_id, so even a retry that races past the
    gateway's own duplicate check changes nothing.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, f"omnirouter:provider:{provider}:{message_id}")


class IngressPublisher:
    """Publishes interaction events and dead letters, waiting for Kafka's acknowledgement."""

    def __init__(self, producer: Any, *, topic_prefix: str, timeout_s: float) -> None:
        """Use a kafka-python ``producer`` (acks=all, idempotent; see connections)."""
        self._producer = producer
        self._timeout_s = timeout_s
        self._relays: dict[asyncio.AbstractEventLoop, Acknowledgements] = {}
        self._queue = SendQueue(producer)
        self._inbound = topic_spec("interactions.inbound").name(topic_prefix)
        self._dead = topic_spec("deadletter").name(topic_prefix)
        # Kafka refuses a bigger record whatever the retries; checked before sending, so a
        # too-big message is a clear 413 rather than a 503 the provider would retry forever.
        config = getattr(producer, "config", {})
        self._limit = int(config.get("max_request_size", KAFKA_MAX_REQUEST_BYTES)) - (
            RECORD_FRAMING_BYTES
        )

    @classmethod
    def connect(
        cls,
        bootstrap_servers: str,
        *,
        topic_prefix: str,
        timeout_s: float,
        security: KafkaSettings | None = None,
    ) -> IngressPublisher:
        """A publisher with its own producer, whose sends never block longer than the timeout."""
        producer = create_producer(
            bootstrap_servers,
            client_id="omnirouter-ingress",
            security=security,
            max_block_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
        )
        return cls(producer, topic_prefix=topic_prefix, timeout_s=timeout_s)

    def _acknowledgements(self, loop: asyncio.AbstractEventLoop) -> Acknowledgements:
        relay = self._relays.get(loop)
        if relay is None:
            # One per loop: `serve` publishes from its own loop and the SMTP listener's. Two loops
            # racing here at worst make a relay twice; each send keeps the one it was given.
            self._relays = {lp: r for lp, r in self._relays.items() if not lp.is_closed()}
            relay = self._relays[loop] = Acknowledgements(loop)
        return relay

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()
        relay = self._acknowledgements(loop)
        expiry = loop.call_later(self._timeout_s, expire, acked)
        try:
            self._queue.submit(topic, key, value, acked, relay)
            await acked
        except TimeoutError as exc:
            raise PublishFailed(
                f"KafkaTimeoutError: no acknowledgement within {self._timeout_s} s"
            ) from exc
        except (KafkaError, HandoverClosed) as exc:
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            expiry.cancel()

    async def publish(self, event: InteractionEvent) -> None:
        """Write ``event`` to interactions.inbound and return once Kafka acknowledged it.

        Raises:
            PublishFailed: the write was not acknowledged (the caller answers 503).
            EventTooLarge: no Kafka record can hold it (the caller answers 413).
        """
        key, value = event.routing_key.encode(), encode(event)
        if len(key) + len(value) > self._limit:
            raise EventTooLarge(len(key) + len(value), self._limit)
        await self._send(self._inbound, key, value)
        count_events(INGRESS_STAGE, "interactions.inbound", event.channel, "out")

    async def dead_letter(
        self,
        raw: bytes,
        *,
        reason: str,
        error_type: str,
        key: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Keep a payload that could not be normalized, with the reason.

        Raises:
            PublishFailed: the dead letter was not acknowledged either.
        """
        letter = DeadLetter.for_payload(
            raw,
            key.encode(),
            stage=INGRESS_STAGE,
            reason=reason[:2000],
            error_type=error_type,
            headers=headers,
        )
        value = encode(letter)
        if len(key.encode()) + len(value) > self._limit:
            letter = oversized_dead_letter(
                letter,
                value,
                key.encode(),
                topic=self._dead,
                stage=INGRESS_STAGE,
                limit=self._limit,
            )
            value = encode(letter)
        await self._send(self._dead, key.encode(), value)
        count_events(INGRESS_STAGE, "deadletter", None, "out")
        count_dead_letter(INGRESS_STAGE, error_type)

    def close(self) -> None:
        """Flush and close the producer, giving up after the publish timeout (a broker that is
        down must not hold a stopping gateway forever). Records still unacknowledged were
        never answered 2xx, so giving up on them loses nothing the providers will not retry."""
        self._queue.close(self._timeout_s)
        try:
            self._producer.close(timeout=self._timeout_s)
        except KafkaError as exc:
            log.warning("producer closed with unacknowledged records", error=str(exc))
            # kafka-python 3's close() flushes first and raises when that times out, before it
            # stops its sender: the sender thread would go on reconnecting to the missing
            # broker for the rest of the process. Stop it without sending what is left.
            sender = getattr(self._producer, "_sender", None)
            if sender is not None and sender.is_alive():
                sender.force_close()
                sender.join(self._timeout_s)

    @property
    def sending(self) -> bool:
        """Whether the producer's sender thread still runs (False once closed)."""
        sender = getattr(self._producer, "_sender", None)
        return sender is not None and sender.is_alive()
