"""The gateway's publisher: every waiter gets its own acknowledgement, from whichever loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from omnirouter.devstack import StackAddresses
from omnirouter.events import InteractionEvent, topic_spec
from omnirouter.ingress.publishing import IngressPublisher, PublishFailed
from support.events import identifier, inbound
from support.kafka import TopicReader, create_catalogue

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(stack: StackAddresses, unique_id: str) -> str:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=2)
    return prefix


@pytest.fixture
async def publisher(stack: StackAddresses, prefix: str) -> AsyncIterator[IngressPublisher]:
    publisher = IngressPublisher.connect(
        stack.kafka_bootstrap_servers, topic_prefix=prefix, timeout_s=10
    )
    try:
        yield publisher
    finally:
        await publisher.aclose()


def sms(n: int) -> InteractionEvent:
    return inbound("sms", identifier("phone", f"+1555010{n:04d}"), text=f"message {n}")


async def published_ids(stack: StackAddresses, prefix: str, count: int) -> set[str]:
    topic = topic_spec("interactions.inbound").name(prefix)
    async with TopicReader(stack.kafka_bootstrap_servers, [topic]) as reader:
        await reader.wait_for(
            lambda r: len(r.on(topic)) >= count, what=f"{count} events on {topic}"
        )
        return {str(e.event_id) for e in reader.decoded(topic, InteractionEvent)}


async def test_concurrent_publishes_each_return_once_their_event_is_on_the_topic(
    stack: StackAddresses, prefix: str, publisher: IngressPublisher
) -> None:
    """Requests in flight together share produce batches; each waiter still gets its answer."""
    events = [sms(n) for n in range(300)]
    await asyncio.gather(*(publisher.publish(e) for e in events))

    assert await published_ids(stack, prefix, len(events)) == {str(e.event_id) for e in events}


async def test_one_publisher_serves_requests_on_two_event_loops(
    stack: StackAddresses, prefix: str, publisher: IngressPublisher
) -> None:
    """`serve` publishes from its HTTP loop and from the SMTP listener's loop in a thread: the
    second loop's writes go through the producer of the loop that started the publisher."""
    await publisher.start()
    here = [sms(n) for n in range(50)]
    there = [sms(n) for n in range(50, 100)]
    failures: list[BaseException] = []

    def other_loop() -> None:
        async def publish_all() -> None:
            await asyncio.gather(*(publisher.publish(e) for e in there))

        try:
            asyncio.run(publish_all())
        except BaseException as exc:  # reported to the test below
            failures.append(exc)

    thread = threading.Thread(target=other_loop, name="other-loop")
    thread.start()
    await asyncio.gather(*(publisher.publish(e) for e in here))
    await asyncio.to_thread(thread.join, 30)

    assert not thread.is_alive()
    assert not failures, failures
    expected = {str(e.event_id) for e in here + there}
    assert await published_ids(stack, prefix, len(expected)) == expected


class _SilentKafka:
    """A producer that takes every record and acknowledges none (a stalled broker), until
    told to acknowledge new records at once."""

    def __init__(self) -> None:
        self.starts = 0
        self.pending: list[asyncio.Future[None]] = []
        self.acknowledge_at_once = False

    async def start(self) -> None:
        self.starts += 1

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.acknowledge_at_once:
            future.set_result(None)
        self.pending.append(future)
        return future

    async def stop(self) -> None:
        pass


async def test_a_write_not_acknowledged_in_time_fails_and_a_late_answer_is_ignored() -> None:
    """No acknowledgement within the timeout is PublishFailed (the caller answers 503); the
    acknowledgement arriving afterwards changes nothing, and the producer still serves."""
    kafka = _SilentKafka()
    publisher = IngressPublisher(lambda: kafka, topic_prefix="silent.", timeout_s=0.2)

    # The first write starts the producer; the second finds it started (a shorter path).
    for n in (1, 2):
        with pytest.raises(PublishFailed, match=r"no acknowledgement within 0\.2 s"):
            await publisher.publish(sms(n))

    assert not any(f.cancelled() for f in kafka.pending), "the records' futures are the producer's"
    for late in kafka.pending:
        late.set_result(None)
    kafka.acknowledge_at_once = True
    await publisher.publish(sms(3))

    assert len(kafka.pending) == 3
    assert all(f.done() and f.exception() is None for f in kafka.pending)
    assert kafka.starts == 1


class _FlakyKafka(_SilentKafka):
    """Refuses its first record outright (as a serializer bug would), then acknowledges."""

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        if not self.pending:
            self.pending.append(asyncio.get_running_loop().create_future())
            raise ValueError("not a record")
        return await super().send(*args, **kwargs)


async def test_a_send_that_raises_fails_its_own_request_only() -> None:
    kafka = _FlakyKafka()
    kafka.acknowledge_at_once = True
    publisher = IngressPublisher(lambda: kafka, topic_prefix="flaky.", timeout_s=5)

    with pytest.raises(ValueError, match="not a record"):
        await publisher.publish(sms(1))
    await publisher.publish(sms(2))

    assert kafka.pending[1].done()


class _Producers:
    """Makes stand-in producers: the first cannot connect (the broker is not up yet), the
    ones after it acknowledge at once; counts what was made and stopped."""

    def __init__(self) -> None:
        self.made: list[_SilentKafka] = []
        self.stopped = 0

    def __call__(self) -> _SilentKafka:
        producers = self

        class Producer(_SilentKafka):
            async def start(self) -> None:
                await super().start()
                if len(producers.made) == 1:
                    raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")

            async def stop(self) -> None:
                producers.stopped += 1

        producer = Producer()
        producer.acknowledge_at_once = True
        self.made.append(producer)
        return producer


async def test_a_producer_that_cannot_start_is_closed_and_the_next_write_starts_one() -> None:
    """A broker not up yet is a 503 for that request, not a publisher broken for good; the
    producer that failed to start is closed (its connections would leak otherwise)."""
    producers = _Producers()
    publisher = IngressPublisher(producers, topic_prefix="late.", timeout_s=5)

    with pytest.raises(PublishFailed, match="KafkaConnectionError"):
        await publisher.publish(sms(1))
    await publisher.publish(sms(2))
    await publisher.aclose()

    assert (len(producers.made), producers.stopped) == (2, 2)


async def test_once_closed_a_publish_fails_without_reaching_kafka() -> None:
    """A stopping gateway answers 503 (providers retry) rather than starting a producer again
    that nothing would close."""
    producers = _Producers()
    publisher = IngressPublisher(producers, topic_prefix="closed.", timeout_s=5)
    with pytest.raises(PublishFailed):
        await publisher.publish(sms(1))  # the first producer cannot connect
    await publisher.publish(sms(2))
    await publisher.aclose()

    with pytest.raises(PublishFailed, match="closed"):
        await publisher.publish(sms(3))
    assert len(producers.made) == 2
    assert len(producers.made[1].pending) == 1


class _Broken(_SilentKafka):
    """A producer whose idempotence broke (a sequence gap after a batch expired): every
    record fails with OutOfOrderSequenceNumber until a new producer is made."""

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_exception(OutOfOrderSequenceNumber())
        self.pending.append(future)
        return future


async def test_a_producer_whose_sequence_broke_is_replaced() -> None:
    """aiokafka never resets an idempotent producer's sequence (aio-libs/aiokafka#1017): the
    partition would answer 503 until the process restarts. The publisher closes it and the next
    write starts a new one."""
    made: list[_SilentKafka] = []

    def make() -> _SilentKafka:
        producer: _SilentKafka = _Broken() if not made else _SilentKafka()
        producer.acknowledge_at_once = True
        made.append(producer)
        return producer

    publisher = IngressPublisher(make, topic_prefix="gap.", timeout_s=5)
    with pytest.raises(PublishFailed, match="OutOfOrderSequenceNumber"):
        await publisher.publish(sms(1))
    await publisher.publish(sms(2))
    await publisher.aclose()

    assert [type(p).__name__ for p in made] == ["_Broken", "_SilentKafka"]
