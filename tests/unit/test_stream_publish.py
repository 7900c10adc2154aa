"""A stage's publish returns only once Kafka acknowledged every record, and a delivery that
never settles (a broker killed mid-request) is published again instead of holding the stage."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import NotLeaderForPartitionError

from omnirouter.pipeline.stream import Outgoing, publish
from support.events import identifier, inbound

# Small enough that the test's deadline (2.5 x this) passes in a fraction of a second.
REQUEST_TIMEOUT_S = 0.04


class Producer:
    """Records every send; each attempt's futures settle as the scenario says."""

    def __init__(self, outcomes: list[str]) -> None:
        self._outcomes = outcomes  # per attempt: "ack", "hang" or "not-leader"
        self.sends: list[tuple[str, bytes]] = []
        self._attempt = -1
        self._records_per_attempt = 0
        self.watched = 0
        self.reached = asyncio.Event()

    def start_attempt(self, records: int) -> None:
        self._records_per_attempt = records

    async def send(self, topic: str, key: bytes, value: bytes, *_: Any) -> asyncio.Future[Any]:
        if len(self.sends) % self._records_per_attempt == 0:
            self._attempt += 1
        self.sends.append((topic, key))
        if self.watched and len(self.sends) >= self.watched:
            self.reached.set()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        outcome = self._outcomes[min(self._attempt, len(self._outcomes) - 1)]
        if outcome == "ack":
            future.set_result(SimpleNamespace(offset=len(self.sends)))
        elif outcome == "not-leader":
            future.set_exception(NotLeaderForPartitionError())
        return future  # "hang": never settles, as a batch caught by a killed broker


def app_with(producer: Producer) -> Any:
    conf = SimpleNamespace(
        producer_request_timeout=REQUEST_TIMEOUT_S, producer_max_request_size=1_048_576
    )
    return SimpleNamespace(conf=conf, producer=producer)


def records(n: int) -> list[Outgoing]:
    return [
        Outgoing(
            "interactions.resolved",
            f"customer-{i}",
            inbound("sms", identifier("phone", f"+1415555{i:04d}"), text=f"message {i}"),
        )
        for i in range(n)
    ]


async def publish_with(outcomes: list[str], n: int = 3) -> Producer:
    producer = Producer(outcomes)
    producer.start_attempt(n)
    # The outer timeout only turns a regression (publish waiting forever) into a failure.
    await asyncio.wait_for(
        publish(
            app_with(producer),
            records(n),
            topic_prefix="t.",
            what="identity.publish",
            max_backoff_s=0.01,
        ),
        timeout=10,
    )
    return producer


async def test_acknowledged_records_are_published_once() -> None:
    producer = await publish_with(["ack"])
    assert [key for _, key in producer.sends] == [b"customer-0", b"customer-1", b"customer-2"]
    assert {topic for topic, _ in producer.sends} == {"t.interactions.resolved"}


async def test_a_delivery_that_never_settles_is_published_again_after_the_deadline() -> None:
    producer = await publish_with(["hang", "ack"])
    keys = [key for _, key in producer.sends]
    assert keys == [b"customer-0", b"customer-1", b"customer-2"] * 2


async def test_a_refused_delivery_is_retried_until_acknowledged() -> None:
    producer = await publish_with(["not-leader", "not-leader", "ack"])
    assert len(producer.sends) == 9


@pytest.mark.parametrize("outcome", ["hang", "not-leader"])
async def test_publish_does_not_return_while_nothing_is_acknowledged(outcome: str) -> None:
    producer = Producer([outcome])
    producer.start_attempt(2)
    task = asyncio.ensure_future(
        publish(
            app_with(producer),
            records(2),
            topic_prefix="t.",
            what="identity.publish",
            max_backoff_s=0.01,
        )
    )

    # Several deadlines' worth of attempts, none acknowledged: publish is still trying.
    producer.watched = 2 * 3
    await asyncio.wait_for(producer.reached.wait(), timeout=10)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
