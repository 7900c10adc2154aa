"""The gateway's publisher: every waiter gets its own acknowledgement, from whichever loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kafka.future import Future

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
def publisher(stack: StackAddresses, prefix: str) -> Iterator[IngressPublisher]:
    publisher = IngressPublisher.connect(
        stack.kafka_bootstrap_servers, topic_prefix=prefix, timeout_s=10
    )
    try:
        yield publisher
    finally:
        publisher.close()


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
    """`serve` publishes from its HTTP loop and from the SMTP listener's loop in a thread."""
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
        self.pending: list[Future] = []
        self.acknowledge_at_once = False

    def send(self, *args: Any, **kwargs: Any) -> Future:
        future = Future()
        if self.acknowledge_at_once:
            future.success(None)
        self.pending.append(future)
        return future

    def close(self, timeout: float | None = None) -> None:
        pass


async def test_a_write_not_acknowledged_in_time_fails_and_a_late_answer_is_ignored() -> None:
    """No acknowledgement within the timeout is PublishFailed (the caller answers 503); the
    acknowledgement arriving afterwards, on the producer's thread, changes nothing."""
    kafka = _SilentKafka()
    publisher = IngressPublisher(kafka, topic_prefix="silent.", timeout_s=0.2)

    with pytest.raises(PublishFailed, match=r"no acknowledgement within 0\.2 s"):
        await publisher.publish(sms(1))

    late = threading.Thread(target=lambda: kafka.pending[0].success(None))
    late.start()
    late.join()
    kafka.acknowledge_at_once = True
    await publisher.publish(sms(2))  # the loop and the publisher still serve

    assert len(kafka.pending) == 2
    assert all(f.succeeded() for f in kafka.pending)


class _FlakyKafka(_SilentKafka):
    """Refuses its first record outright (as a serializer bug would), then acknowledges."""

    def send(self, *args: Any, **kwargs: Any) -> Future:
        if not self.pending:
            self.pending.append(Future().failure(ValueError("not a record")))
            raise ValueError("not a record")
        return super().send(*args, **kwargs)


async def test_a_send_that_raises_fails_its_own_request_only() -> None:
    kafka = _FlakyKafka()
    kafka.acknowledge_at_once = True
    publisher = IngressPublisher(kafka, topic_prefix="flaky.", timeout_s=5)

    with pytest.raises(ValueError, match="not a record"):
        await publisher.publish(sms(1))
    await publisher.publish(sms(2))  # the queue's thread carries on

    assert kafka.pending[1].succeeded()


async def test_once_closed_a_publish_fails_without_reaching_kafka() -> None:
    """A stopping gateway answers 503 (providers retry) rather than writing after close."""
    kafka = _SilentKafka()
    kafka.acknowledge_at_once = True
    publisher = IngressPublisher(kafka, topic_prefix="closed.", timeout_s=5)
    await publisher.publish(sms(1))
    publisher.close()

    with pytest.raises(PublishFailed, match="closed"):
        await publisher.publish(sms(2))
    assert len(kafka.pending) == 1
