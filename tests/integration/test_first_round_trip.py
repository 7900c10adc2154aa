"""The harness's first real round trip: kafka-python → real broker → faust agent → real Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
import redis.asyncio as aioredis

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    Channel,
    Content,
    DeadLetter,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    ProviderRefs,
    decode_or_dead_letter,
    encode,
)
from omnirouter.pipeline import create_app
from support.waiting import eventually_async

pytestmark = pytest.mark.integration


def _sms(text: str) -> InteractionEvent:
    return InteractionEvent(
        occurred_at=datetime.now(UTC),
        channel=Channel.SMS,
        direction=Direction.INBOUND,
        identifiers=(Identifier(kind=IdentifierKind.PHONE, value="+15550102345"),),
        content=Content(text=text),
        provider=ProviderRefs(provider="twilio", message_id="SM0001"),
    )


async def test_event_published_with_kafka_python_reaches_redis_through_a_faust_agent(
    stack: StackAddresses, topic_factory, redis_prefix: str, unique_id: str
) -> None:
    topic_name = topic_factory("inbound", partitions=3)
    app = create_app(f"roundtrip-{unique_id}", stack.kafka_bootstrap_servers)
    store = aioredis.Redis.from_url(stack.redis_url)
    inbound = app.topic(
        topic_name, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )

    @app.agent(inbound, concurrency=1)
    async def record(stream):  # type: ignore[no-untyped-def]
        async for message in stream.events():
            decoded = decode_or_dead_letter(
                InteractionEvent,
                message.value,
                message.key,
                stage="roundtrip",
                source_topic=topic_name,
                source_partition=message.message.partition,
                source_offset=message.message.offset,
            )
            if isinstance(decoded, DeadLetter):
                await store.hset(f"{redis_prefix}:dead", str(decoded.source_offset), decoded.reason)
            else:
                await store.set(f"{redis_prefix}:event:{decoded.event_id}", encode(decoded))

    event = _sms("My parcel never arrived")
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="roundtrip-test")
    await app.start()
    try:
        metadata = producer.send(topic_name, encode(event), key=event.routing_key.encode()).get(
            timeout=30
        )
        producer.send(topic_name, b"\xff not json", key=b"phone:+15550000000").get(timeout=30)
        producer.flush()

        stored = await eventually_async(
            lambda: store.get(f"{redis_prefix}:event:{event.event_id}"), what="the event in Redis"
        )
        dead = await eventually_async(
            lambda: store.hgetall(f"{redis_prefix}:dead"), what="the dead letter"
        )
    finally:
        await app.stop()
        producer.close()
        await store.aclose()

    assert metadata.topic == topic_name
    round_tripped = InteractionEvent.model_validate_json(stored)
    assert round_tripped == event
    assert round_tripped.event_id == UUID(str(event.event_id))
    assert round_tripped.content.text == "My parcel never arrived"
    # The undecodable record was not dropped: it became a dead letter with a reason.
    assert [reason.decode() for reason in dead.values()] == ["invalid UTF-8"]
