"""Poison messages land on the dead-letter topic with a reason; after a fix they are re-driven."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from omnirouter.connections import create_producer, ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.events import ResolvedInteraction, encode, topic_spec
from omnirouter.ops.dlq import plan_replay, read_dead_letters, replay
from omnirouter.pipeline import create_app
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.identity.worker import IdentityWorker
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import KafkaSettings, PipelineSettings, Settings
from support.events import identifier, inbound
from support.kafka import TopicReader
from support.waiting import eventually_async

pytestmark = pytest.mark.integration


async def _run_identity(stack, prefix, redis_prefix, group, policy):  # type: ignore[no-untyped-def]
    client = aioredis.Redis.from_url(stack.redis_url)
    app = create_app(group, stack.kafka_bootstrap_servers)
    store = RedisIdentityStore(client, key_prefix=redis_prefix, policy=policy)
    IdentityWorker(
        app,
        store,
        policy=policy,
        pipeline=PipelineSettings(batch_max=50, batch_within_s=0.02),
        topic_prefix=prefix,
    )
    await app.start()
    return app, client


async def test_poison_messages_are_kept_with_reasons_and_redriven_after_a_fix(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> None:
    prefix = f"test.{unique_id}."
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix)
    )
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    inbound_topic = topic_spec("interactions.inbound").name(prefix)
    resolved_topic = topic_spec("interactions.resolved").name(prefix)
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="dlq-test")
    strict = IdentityPolicy(blocked_values={"email": ["shop@partner.test"]})
    blocked = inbound("webform", identifier("email", "shop@partner.test"), text="partner order")
    poison = [
        b"{not json",
        b'{"schema_version": 7, "event_id": "x"}',
        b"\xff\xfe invalid utf-8",
        encode(blocked),
    ]
    app, client = await _run_identity(stack, prefix, redis_prefix, f"dlq-{unique_id}", strict)
    try:
        for value in poison:
            producer.send(inbound_topic, value, key=b"k").get(30)
        healthy = inbound("sms", identifier("phone", "+15550101234"), text="still flowing")
        producer.send(inbound_topic, encode(healthy), key=healthy.routing_key.encode()).get(30)
        async with TopicReader(stack.kafka_bootstrap_servers, [resolved_topic]) as reader:
            await reader.wait_for(lambda r: r.on(resolved_topic), what="the healthy event resolved")

        async def four_letters() -> list | None:  # type: ignore[type-arg]
            found = await asyncio.to_thread(
                lambda: read_dead_letters(stack.kafka_bootstrap_servers, topic_prefix=prefix)
            )
            return found if len(found) >= 4 else None

        letters = await eventually_async(four_letters, what="four dead letters")
    finally:
        await app.stop()
        await client.aclose()

    reasons = sorted(record.letter.reason.split(":")[0].split(" (")[0] for record in letters)
    assert reasons == [
        "invalid JSON",
        "invalid UTF-8",
        "no usable identifier",
        "unknown schema_version 7",
    ]
    assert all(record.letter.stage == "identity" for record in letters)
    assert {record.letter.original_value() for record in letters} == set(poison)

    # The fix: the partner's mailbox is no longer blocked. Re-drive; the stream resolves it.
    fixed = IdentityPolicy()
    app, client = await _run_identity(stack, prefix, redis_prefix, f"dlq-{unique_id}", fixed)
    try:
        only_blocked = [r for r in letters if r.letter.error_type == "NoUsableIdentifier"]
        plans = plan_replay(only_blocked, topic_prefix=prefix)
        assert [p.target_topic for p in plans] == [inbound_topic]

        def publish(topic: str, key: bytes | None, value: bytes) -> None:
            producer.send(topic, value, key=key).get(30)

        assert await asyncio.to_thread(replay, plans, publish) == 1
        async with TopicReader(stack.kafka_bootstrap_servers, [resolved_topic]) as reader:
            resolved = await reader.wait_for(
                lambda r: [
                    x
                    for x in r.decoded(resolved_topic, ResolvedInteraction)
                    if x.causation_id == blocked.event_id
                ],
                what="the re-driven event resolved",
            )
        assert resolved[0].interaction.content.text == "partner order"
    finally:
        await app.stop()
        await client.aclose()
        producer.close()
