"""Records a worker fetched and dropped during a rebalance are fetched again, on the real broker,
even on a partition nothing was committed for yet.

faust drops the records of a fetch that came back while its flow was stopped (a rebalance had
begun) and seeks back to the committed offsets so that they are fetched again. aiokafka's seek
leaves a partition with nothing (or 0) committed where it is: the dropped records were never
fetched again, and the first records processed after them were committed past them. The broker
SIGKILL cluster scenario lost acknowledged events that way, early in a run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.pipeline import create_app
from omnirouter.pipeline.app import seek_to_committed_or_start
from omnirouter.pipeline.stream import raw_topic
from support.waiting import eventually_async

pytestmark = pytest.mark.integration

RECORDS = 3


def _produce(stack: StackAddresses, topic: str, count: int = RECORDS) -> None:
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="rewind-test")
    try:
        for n in range(count):
            producer.send(topic, b"record-%d" % n, partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _group_consumer(stack: StackAddresses, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


@contextlib.asynccontextmanager
async def _assigned(
    stack: StackAddresses, tp: TopicPartition, group: str, *, committed: int | None
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of ``group`` holding ``tp`` (no group membership), with ``committed``
    committed for the group beforehand unless None."""
    if committed is not None:
        # By another consumer, before this one is assigned the partition: one that commits
        # after its assignment races its own fetch of the committed offset.
        committer = _group_consumer(stack, group)
        await committer.start()
        try:
            committer.assign([tp])
            await committer.commit({tp: OffsetAndMetadata(committed, "")})
        finally:
            await committer.stop()
    consumer = _group_consumer(stack, group)
    await consumer.start()
    try:
        consumer.assign([tp])
        yield consumer
    finally:
        await consumer.stop()


async def _read_all(consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[int]:
    """The offsets of every record from the consumer's position to the end of ``tp``."""
    offsets: list[int] = []
    end = (await consumer.end_offsets([tp]))[tp]

    async def at_end() -> bool:
        batches = await consumer.getmany(tp, timeout_ms=200)
        offsets.extend(record.offset for record in batches.get(tp, []))
        return await consumer.position(tp) >= end

    await eventually_async(at_end, timeout_s=30, what=f"the records of {tp} up to {end}")
    return offsets


@pytest.mark.parametrize(
    ("committed", "expected_start"),
    [(None, 0), (0, 0), (2, 2)],
    ids=["nothing committed", "0 committed", "2 committed"],
)
async def test_a_consumer_seeks_back_to_its_committed_offset_or_the_beginning(
    stack: StackAddresses,
    topic_factory: Callable[..., str],
    unique_id: str,
    committed: int | None,
    expected_start: int,
) -> None:
    topic = topic_factory("rewind")
    _produce(stack, topic)
    tp = TopicPartition(topic, 0)
    async with _assigned(stack, tp, f"rewind-{unique_id}", committed=committed) as consumer:
        assert await _read_all(consumer, tp) == list(range(expected_start, RECORDS))

        # aiokafka's own seek leaves this position alone when nothing above 0 is committed.
        assert await consumer.seek_to_committed() == {tp: committed}
        moved = await consumer.position(tp) != RECORDS
        assert moved == (committed is not None and committed > 0)

        assert await seek_to_committed_or_start(consumer) == {tp: committed}
        assert await _read_all(consumer, tp) == list(range(expected_start, RECORDS))


@pytest.mark.parametrize(
    ("committed", "expected_position"),
    [(None, RECORDS), (0, 0)],
    ids=["nothing committed", "0 committed"],
)
async def test_with_the_latest_reset_policy_only_a_partition_with_nothing_committed_goes_to_its_end(
    stack: StackAddresses,
    topic_factory: Callable[..., str],
    unique_id: str,
    committed: int | None,
    expected_position: int,
) -> None:
    # Where a new consumer of that policy would start: after what the partition holds. A
    # committed 0 is a commit like any other.
    topic = topic_factory("rewind-latest")
    _produce(stack, topic)
    tp = TopicPartition(topic, 0)
    group = f"rewind-latest-{unique_id}"
    async with _assigned(stack, tp, group, committed=committed) as consumer:
        consumer.seek(tp, 1)
        assert await seek_to_committed_or_start(consumer, reset="latest") == {tp: committed}
        assert await consumer.position(tp) == expected_position


async def test_a_worker_processes_the_records_it_dropped_when_a_rebalance_began(
    stack: StackAddresses, topic_factory: Callable[..., str], unique_id: str
) -> None:
    """A new consumer group (nothing committed) whose first fetch comes back after its flow was
    stopped: faust drops the records and seeks back, and must then fetch them again. The
    rebalance is simulated (the flow stopped and resumed around the fetch), not a real one."""
    topic = topic_factory("dropped")
    _produce(stack, topic)
    app = create_app(f"rewind-worker-{unique_id}", stack.kafka_bootstrap_servers)
    consumer = app.consumer
    thread = consumer._thread
    seen: list[int] = []
    dropped: list[int] = []
    resumed = asyncio.Event()

    @app.agent(raw_topic(app, topic), concurrency=1)
    async def record_offsets(stream: Any) -> Any:
        async for event in stream.events():
            seen.append(event.message.offset)
            yield None

    fetch_records = thread._fetch_records

    async def first_fetch_lands_in_a_rebalance(*args: Any, **kwargs: Any) -> Any:
        # On the consumer's own thread. The first fetch that brings our records back finds the
        # flow stopped, as when a rebalance starts while a fetch is in flight.
        records = await fetch_records(*args, **kwargs)
        ours = [r.offset for tp, batch in records.items() if tp.topic == topic for r in batch]
        if ours and not dropped:
            dropped.extend(ours)
            stopped = asyncio.run_coroutine_threadsafe(_stop_flow(consumer), app.loop)
            await asyncio.wrap_future(stopped)
        return records

    perform_seek = consumer.perform_seek

    async def seek_then_resume() -> None:
        # What faust does with the dropped records: seek back to the committed offsets. The
        # flow then resumes, as it does when the rebalance completes.
        await perform_seek()
        if dropped and not resumed.is_set():
            resumed.set()
            consumer.resume_flow()

    thread._fetch_records = first_fetch_lands_in_a_rebalance
    consumer.perform_seek = seek_then_resume
    await app.start()
    try:

        async def all_seen() -> bool:
            # Any order, any repeat: a second rebalance at start-up may deliver records again.
            return set(seen) >= set(range(RECORDS))

        try:
            await eventually_async(
                all_seen, timeout_s=30, what=f"offsets 0-{RECORDS - 1} processed"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; processed: {seen}, dropped: {dropped}") from None
    finally:
        await app.stop()
    assert dropped, "the first fetch was not dropped: the test did not exercise the rewind"
    assert resumed.is_set()


async def _stop_flow(consumer: Any) -> None:
    consumer.stop_flow()
