"""Routing on the real stack: the engine on real Redis, its decisions published to real Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import topic_spec
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.settings import CaseSettings
from support.kafka import TopicReader, create_catalogue
from support.routing_env import RoutingEnv
from support.stack import async_redis


@pytest.fixture
async def routing(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> AsyncIterator[RoutingEnv]:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=1)
    client = async_redis(stack.redis_url)
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="routing-test")
    outputs = [
        topic_spec(k).name(prefix)
        for k in ("routing.decisions", "cases.routed", "interactions.outbound")
    ]
    env = RoutingEnv(
        stack,
        prefix,
        redis_prefix,
        RoutingStore(client, key_prefix=redis_prefix),
        RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings()),
        producer,
        None,  # type: ignore[arg-type]
    )
    try:
        async with TopicReader(stack.kafka_bootstrap_servers, outputs) as reader:
            env.reader = reader
            yield env
    finally:
        producer.close()
        await client.aclose()
        for extra in env.clients:
            await extra.aclose()
