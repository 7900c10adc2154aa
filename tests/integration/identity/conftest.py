"""A real identity worker per test: its own topics, Redis key prefix and consumer group."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kafka import KafkaProducer

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import TOPICS, InteractionEvent, encode, topic_spec
from omnirouter.pipeline import create_app
from omnirouter.pipeline.identity.operations import IdentityOperations, KafkaEventPublisher
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.identity.worker import IdentityWorker
from omnirouter.settings import PipelineSettings
from support.kafka import TopicReader, create_catalogue
from support.redis_trips import CountingRedis, counting_redis


@dataclass
class IdentityHarness:
    """A running identity worker on the real stack, and ways to feed and observe it."""

    prefix: str
    producer: KafkaProducer
    reader: TopicReader
    store: RedisIdentityStore
    operations: IdentityOperations
    worker: IdentityWorker
    redis: CountingRedis

    def topic(self, key: str) -> str:
        return topic_spec(key).name(self.prefix)

    def send(self, event: InteractionEvent) -> None:
        self.producer.send(
            self.topic("interactions.inbound"), encode(event), key=event.routing_key.encode()
        ).get(30)

    def send_raw(self, value: bytes, key: bytes = b"raw") -> None:
        self.producer.send(self.topic("interactions.inbound"), value, key=key).get(30)

    async def wait(
        self, key: str, model: type[Any], predicate: Callable[[list[Any]], bool], what: str
    ) -> list[Any]:
        topic = self.topic(key)
        return await self.reader.wait_for(
            lambda r: (lambda items: items if predicate(items) else None)(r.decoded(topic, model)),
            what=what,
        )


@pytest.fixture
def identity_policy() -> IdentityPolicy:
    """The policy the worker runs with; tests override it to exercise guardrails."""
    return IdentityPolicy()


@pytest.fixture
async def identity(
    stack: StackAddresses, unique_id: str, redis_prefix: str, identity_policy: IdentityPolicy
) -> AsyncIterator[IdentityHarness]:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    client = counting_redis(stack.redis_url)
    store = RedisIdentityStore(client, key_prefix=redis_prefix, policy=identity_policy)
    app = create_app(f"identity-{unique_id}", stack.kafka_bootstrap_servers)
    worker = IdentityWorker(
        app,
        store,
        policy=identity_policy,
        pipeline=PipelineSettings(batch_max=50, batch_within_s=0.02),
        topic_prefix=prefix,
    )
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="identity-test")
    operations = IdentityOperations(store, KafkaEventPublisher(producer), topic_prefix=prefix)
    outputs = [topic_spec(t.key).name(prefix) for t in TOPICS if t.key != "interactions.inbound"]
    await app.start()
    try:
        async with TopicReader(stack.kafka_bootstrap_servers, outputs) as reader:
            yield IdentityHarness(prefix, producer, reader, store, operations, worker, client)
    finally:
        await app.stop()
        producer.close()
        await client.aclose()
