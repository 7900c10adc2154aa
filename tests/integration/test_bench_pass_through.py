"""The bench's pass-throughs on the real broker: the raw aiokafka baseline and the faust floor
(a worker's app, consumer and batching with no work) each move every record, key and value
unchanged and once, across their hops, and each stops when asked."""

from __future__ import annotations

import asyncio

import pytest

from omnirouter.bench.baseline import FRAMEWORKS, PassThrough
from omnirouter.connections import TopicRequest, create_producer, ensure_topics
from omnirouter.devstack import StackAddresses
from support.kafka import TopicReader, records_on

pytestmark = pytest.mark.integration

RECORDS = 300


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_pass_through_moves_every_record_unchanged_across_its_hops(
    stack: StackAddresses, unique_id: str, framework: str
) -> None:
    kafka = stack.kafka_bootstrap_servers
    topics = [f"test.{unique_id}.{hop}" for hop in ("in", "mid", "out")]
    ensure_topics(kafka, [TopicRequest(topic, 3, {}) for topic in topics])
    passthrough = PassThrough(kafka, topics, batch_max=50, framework=framework)
    await passthrough.start()
    try:
        sent = {(f"customer-{i % 40}".encode(), f"event {i}".encode()) for i in range(RECORDS)}
        producer = create_producer(kafka, client_id=f"pass-through-test-{framework}")
        try:
            for key, value in sorted(sent):
                producer.send(topics[0], value, key=key)
            producer.flush(30)
        finally:
            producer.close()
        async with TopicReader(kafka, [topics[-1]]) as reader:

            def all_out(r: TopicReader) -> list[tuple[bytes | None, bytes | None]] | None:
                out = [(record.key, record.value) for record in r.on(topics[-1])]
                return out if len(out) >= RECORDS else None

            out = await reader.wait_for(all_out, timeout_s=60, what=f"{RECORDS} records out")
    finally:
        await asyncio.to_thread(passthrough.stop)
    assert passthrough.exitcode == 0  # stopped when asked, not terminated
    assert sorted(out) == sorted(sent)  # none lost, none changed
    # And none doubled, however late: the out topic holds exactly what was sent.
    assert await records_on(kafka, topics[-1]) == RECORDS
