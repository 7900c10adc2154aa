"""The identity and case workers together on the real stack, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kafka import KafkaProducer

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import TOPICS, InteractionEvent, encode, topic_spec
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.cases.worker import CaseWorker
from omnirouter.pipeline.identity.store import RedisIdentityStore
from support.kafka import TopicReader, create_catalogue
from support.workers import start_workers


@dataclass
class Pipeline:
    """Identity + case workers sharing one faust app, and ways to feed and observe them."""

    prefix: str
    redis_prefix: str
    stack: StackAddresses
    producer: KafkaProducer
    reader: TopicReader
    cases: RedisCaseStore
    identity: RedisIdentityStore
    case_worker: CaseWorker

    def topic(self, key: str) -> str:
        return topic_spec(key).name(self.prefix)

    def send(self, event: InteractionEvent) -> None:
        key = "interactions.inbound" if event.direction == "inbound" else "interactions.outbound"
        routing = event.routing_key.encode()
        self.producer.send(self.topic(key), encode(event), key=routing).get(30)

    async def wait(
        self, key: str, model: type[Any], predicate: Callable[[list[Any]], bool], what: str
    ) -> list[Any]:
        topic = self.topic(key)
        return await self.reader.wait_for(
            lambda r: (lambda items: items if predicate(items) else None)(r.decoded(topic, model)),
            what=what,
        )


@pytest.fixture
async def pipeline(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> AsyncIterator[Pipeline]:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    app, cases, identity, worker, client = await start_workers(
        stack, app_id=f"pipeline-{unique_id}", prefix=prefix, redis_prefix=redis_prefix
    )
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="cases-test")
    outputs = [topic_spec(t.key).name(prefix) for t in TOPICS if t.key != "interactions.inbound"]
    try:
        async with TopicReader(stack.kafka_bootstrap_servers, outputs) as reader:
            yield Pipeline(prefix, redis_prefix, stack, producer, reader, cases, identity, worker)
    finally:
        await app.stop()
        producer.close()
        await client.aclose()
