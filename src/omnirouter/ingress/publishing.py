"""Writing to Kafka from request handlers: acknowledged by every in-sync replica, or an error.

The gateway writes with aiokafka's producer on its own event loop: a request appends its
record to the batch being built and awaits that record's acknowledgement, with no thread in
between. (kafka-python's synchronous producer needed a thread to hand records over and another
to bring acknowledgements back; every crossing waited for the GIL, and at 1,000 webhooks/s that
more than doubled both the median and the p99 latency.) The producer belongs to the loop that
first publishes; the SMTP listener's loop, in a thread of its own, hands its writes to that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import aiokafka.errors
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from omnirouter.events import (
    DeadLetter,
    InteractionEvent,
    encode,
    topic_spec,
)
from omnirouter.events.oversize import RECORD_FRAMING_BYTES, oversized_dead_letter
from omnirouter.logs import get_logger
from omnirouter.ops.metrics import count_dead_letter, count_events
from omnirouter.security import aiokafka_security

if TYPE_CHECKING:
    from omnirouter.settings import KafkaSettings

INGRESS_STAGE = "ingress"
log = get_logger(__name__)


class PublishFailed(Exception):  # noqa: N818 - maps to HTTP 503, reads as the outcome
    """Kafka did not acknowledge the write in time; the caller must not report success."""


KAFKA_MAX_REQUEST_BYTES = 1_048_576
"""The producer's ``max_request_size`` (the Kafka clients' default): no record may be larger."""

BROKEN_PRODUCER_ERRORS: tuple[type[BaseException], ...] = (
    aiokafka.errors.OutOfOrderSequenceNumber,
    aiokafka.errors.UnknownProducerId,
    aiokafka.errors.InvalidProducerEpoch,
    aiokafka.errors.ProducerFenced,
)
"""Answers after which an idempotent producer cannot write again: it is replaced."""

PRODUCER_BATCH_BYTES = 256 * 1024
"""Per partition: the records of every request in flight share one produce request."""


class AsyncProducer(Protocol):
    """What the publisher needs of aiokafka's producer (tests give a stand-in)."""

    async def start(self) -> None:
        """Connect and fetch metadata."""

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        """Append a record; the future settles with its acknowledgement or error."""

    async def stop(self) -> None:
        """Send what is pending and close the connections."""


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

    def __init__(
        self,
        make_producer: Callable[[], AsyncProducer],
        *,
        topic_prefix: str,
        timeout_s: float,
        max_request_bytes: int = KAFKA_MAX_REQUEST_BYTES,
    ) -> None:
        """Write through the producer ``make_producer`` builds (on the loop that first publishes:
        aiokafka's producer belongs to one loop). Every write gives up after ``timeout_s``."""
        self._make_producer = make_producer
        self._timeout_s = timeout_s
        self._producer: AsyncProducer | None = None
        self._home: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Lock | None = None
        self._closed = False
        self._retiring: set[asyncio.Task[None]] = set()
        self._inbound = topic_spec("interactions.inbound").name(topic_prefix)
        self._dead = topic_spec("deadletter").name(topic_prefix)
        # Kafka refuses a bigger record whatever the retries; checked before sending, so a
        # too-big message is a clear 413 rather than a 503 the provider would retry forever.
        self._limit = max_request_bytes - RECORD_FRAMING_BYTES

    @classmethod
    def connect(
        cls,
        bootstrap_servers: str,
        *,
        topic_prefix: str,
        timeout_s: float,
        security: KafkaSettings | None = None,
    ) -> IngressPublisher:
        """A publisher with its own idempotent producer (``acks=all``), connected on first use
        or by :meth:`start`."""

        def make_producer() -> AIOKafkaProducer:
            # api_version stays unset: a fixed value caps the protocol versions (see connections).
            return AIOKafkaProducer(
                bootstrap_servers=[s.strip() for s in bootstrap_servers.split(",")],
                client_id="omnirouter-ingress",
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                max_batch_size=PRODUCER_BATCH_BYTES,
                max_request_size=KAFKA_MAX_REQUEST_BYTES,
                # A record not acknowledged by then fails (its request has answered 503 already).
                request_timeout_ms=int(timeout_s * 1000),
                **aiokafka_security(security),
            )

        return cls(make_producer, topic_prefix=topic_prefix, timeout_s=timeout_s)

    async def start(self) -> None:
        """Connect now, on the running loop, rather than on the first write.

        Raises:
            PublishFailed: Kafka did not answer in time.
        """
        await self._bounded(self._started())

    async def _started(self) -> AsyncProducer:
        if self._producer is not None:
            return self._producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._closed:
                raise PublishFailed("the publisher is closed")
            if self._producer is None:
                producer = self._make_producer()
                try:
                    await producer.start()
                except BaseException:
                    # Unstarted, it has no sender to wait for: this only closes its connections.
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    async def _write(self, topic: str, key: bytes, value: bytes) -> None:
        await self._record(await self._started(), topic, key, value)

    def _on_home_loop(self) -> bool:
        """Bind the publisher to the running loop unless another live loop already has it."""
        loop = asyncio.get_running_loop()
        if self._home is None or self._home.is_closed():
            # A producer of a closed loop cannot be used or closed any more; start afresh.
            self._home, self._producer, self._starting = loop, None, None
        return self._home is loop

    async def _bounded(self, write: Coroutine[Any, Any, Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._on_home_loop():
                    return await write
                home = self._home
                if home is None or not home.is_running():
                    write.close()  # never scheduled: nothing will await it
                    raise PublishFailed("the publisher's event loop is not running")
                # Another loop (the SMTP listener's thread): the producer's loop does the write.
                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(write, home))
        except (TimeoutError, KafkaError) as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: TimeoutError | KafkaError) -> PublishFailed:
        if isinstance(exc, TimeoutError):
            return PublishFailed(
                f"KafkaTimeoutError: no acknowledgement within {self._timeout_s} s"
            )
        return PublishFailed(f"{type(exc).__name__}: {exc}")

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        if self._closed:
            raise PublishFailed("the publisher is closed")
        producer = self._producer
        if producer is None or self._home is not asyncio.get_running_loop():
            await self._bounded(self._write(topic, key, value))
        else:
            # Every request after the first: no timeout scope around the write, only the
            # record's timer (asyncio.timeout was ~5% of the gateway's CPU at its maximum).
            await self._record(producer, topic, key, value)

    async def _record(self, producer: AsyncProducer, topic: str, key: bytes, value: bytes) -> None:
        """Append the record and wait for its acknowledgement, at most the publish timeout.

        send() itself waits for metadata or buffer space at most request_timeout_ms, the
        publish timeout; the acknowledgement's timer gets what is left of it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        waiter: asyncio.Future[None] = loop.create_future()
        try:
            acknowledged = await producer.send(topic, value, key=key)
            # The record's own future is the producer's: relayed, never cancelled by a request
            # that gives up.
            acknowledged.add_done_callback(functools.partial(_relay, waiter))
            expiry = loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                expiry.cancel()
        except KafkaError as exc:
            self._retire_if_broken(producer, exc)
            raise self._failed(exc) from exc
        except TimeoutError as exc:
            raise self._failed(exc) from exc

    def _retire_if_broken(self, producer: AsyncProducer, error: KafkaError) -> None:
        """Replace a producer whose idempotent state broke: aiokafka never resets it, so every
        later record of that partition would fail until the process restarts (a batch that
        expired unsent, e.g. during a leader election, leaves a sequence gap; aio-libs/aiokafka
        #1017). The next write starts a new producer, with a new producer id."""
        if not isinstance(error, BROKEN_PRODUCER_ERRORS) or self._producer is not producer:
            return
        log.warning("replacing the kafka producer", error=f"{type(error).__name__}: {error}")
        self._producer = None
        retiring = asyncio.ensure_future(_stop(producer, self._timeout_s))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

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

    async def aclose(self) -> None:
        """Send what is pending and close the producer, on its own loop, giving up after the
        publish timeout (a broker that is down must not hold a stopping gateway forever).
        Records still unacknowledged were never answered 2xx, so giving up on them loses
        nothing the providers will not retry."""
        self._closed = True
        home = self._home
        if home is None or home.is_closed():
            return
        if home is asyncio.get_running_loop():
            await self._close_here()
        elif home.is_running():
            closing = asyncio.run_coroutine_threadsafe(self._close_here(), home)
            # Bounded: _stop gives up after the timeout, and twice that covers its fallback.
            await asyncio.wait_for(asyncio.wrap_future(closing), 2 * self._timeout_s + 1)

    async def _close_here(self) -> None:
        if self._starting is not None:
            async with self._starting:  # a producer being started is closed too
                pass
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop(producer, self._timeout_s)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _relay(waiter: asyncio.Future[None], acknowledged: asyncio.Future[Any]) -> None:
    if waiter.done():
        return  # the request gave up (timed out or cancelled)
    if acknowledged.cancelled():
        waiter.set_exception(PublishFailed("the write was cancelled"))
    elif (error := acknowledged.exception()) is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _stop(producer: AsyncProducer, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await producer.stop()
    except TimeoutError:
        log.warning("producer closed with unacknowledged records")
        # stop() marked the producer closed before it began to flush; what the flush left is
        # its sender task and the connections. Stop both without sending the rest.
        sender = getattr(producer, "_sender", None)
        client = getattr(producer, "client", None)
        with contextlib.suppress(Exception):
            if sender is not None:
                await sender.close()
            if client is not None:
                await client.close()
