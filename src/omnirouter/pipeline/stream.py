"""What every stream worker shares: batches that finish, and publishing that is acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from omnirouter.events import EventEnvelope, encode, topic_spec
from omnirouter.events.oversize import RECORD_FRAMING_BYTES, oversized_dead_letter
from omnirouter.pipeline.retry import until_it_succeeds

# How long a stopping worker lets an in-flight batch finish: faust acks a take() batch when the
# agent leaves it, so a batch abandoned half-way could have its offsets committed unprocessed.
FINISH_ON_STOP_S = 30.0


# Kafka refuses a record over the producer's max_request_size (see pipeline.app) or the broker's
# message.max.bytes (1 MiB + 12 by default). faust raises the first as ProducerSendError, which
# crashes the agent; aiokafka reports the second as a KafkaError, which the retry loop treats as
# transient. Either way one oversized record would stop the stream: it becomes a dead letter.


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish: the catalogue key of its topic, its Kafka key and the event."""

    topic_key: str
    key: str
    event: EventEnvelope


async def finish_even_if_stopping(batch_work: Awaitable[None]) -> None:
    """Run a batch to completion even when the agent is cancelled meanwhile."""
    task = asyncio.ensure_future(batch_work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait_for(task, timeout=FINISH_ON_STOP_S)
        raise


def raw_topic(app: faust.App, name: str) -> Any:
    """A faust topic whose keys and values reach the agent as the bytes on the wire.

    Decoding is ours (with dead letters for what does not decode), so nothing is dropped by a
    codec error inside faust.
    """
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


async def publish(
    app: faust.App,
    outgoing: Sequence[Outgoing],
    *,
    topic_prefix: str,
    what: str,
    max_backoff_s: float,
) -> None:
    """Publish every record and return once Kafka acknowledged all of them.

    Retrying a whole batch may publish some records twice; every record carries a
    deterministic event_id and consumers are idempotent on it.
    """
    if not outgoing:
        return
    limit = int(app.conf.producer_max_request_size) - RECORD_FRAMING_BYTES
    stage = what.split(".")[0]
    records = [_fitting(item, topic_prefix, stage=stage, limit=limit) for item in outgoing]

    async def send_all() -> None:
        producer = app.producer
        pending: list[Awaitable[Any]] = []
        for topic, key, value in records:
            pending.append(await producer.send(topic, key, value, None, None, None))
        await asyncio.gather(*pending)

    await until_it_succeeds(send_all, what=what, max_backoff_s=max_backoff_s)


def _fitting(
    item: Outgoing, topic_prefix: str, *, stage: str, limit: int
) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of ``item``, or of a dead letter in its place when it is too big."""
    topic = topic_spec(item.topic_key).name(topic_prefix)
    key, value = item.key.encode(), encode(item.event)
    if len(key) + len(value) <= limit:
        return topic, key, value
    letter = oversized_dead_letter(item.event, value, key, topic=topic, stage=stage, limit=limit)
    return topic_spec("deadletter").name(topic_prefix), key, encode(letter)
