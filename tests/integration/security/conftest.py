"""Security tests' fixtures: the gateway in-process on the test's own topics and keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from integration.security.surfaces import PUBLIC_URL, Gateway, security_settings
from omnirouter.devstack import StackAddresses
from omnirouter.events import topic_spec
from omnirouter.ingress.app import create_ingress_app
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.intake import Intake
from omnirouter.ingress.publishing import IngressPublisher
from support.kafka import TopicReader


@pytest.fixture
async def gateway(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> AsyncIterator[Gateway]:
    settings = security_settings(stack, f"test.{unique_id}.", redis_prefix)
    redis_client = aioredis.Redis.from_url(stack.redis_url)
    publisher = IngressPublisher.connect(
        stack.kafka_bootstrap_servers,
        topic_prefix=settings.kafka.topic_prefix,
        timeout_s=settings.ingress.publish_timeout_s,
    )
    intake = Intake(
        publisher,
        ProviderRetries(redis_client, key_prefix=redis_prefix, ttl_s=settings.ingress.dedupe_ttl_s),
        retry_after_s=settings.ingress.retry_after_s,
    )
    context = ChannelContext(intake, settings, redis_client)
    app = create_ingress_app(context)
    inbound = topic_spec("interactions.inbound").name(settings.kafka.topic_prefix)
    try:
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
            ) as client,
            TopicReader(stack.kafka_bootstrap_servers, [inbound]) as reader,
        ):
            yield Gateway(context, client, reader, settings, inbound)
    finally:
        await intake.aclose()
        await publisher.aclose()
        await redis_client.aclose()
