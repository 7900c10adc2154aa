"""The ingress gateway on the real stack: a real producer to real Kafka, real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from omnirouter.connections import ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.events import DeadLetter, InteractionEvent, topic_spec
from omnirouter.ingress.app import create_ingress_app
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.intake import Intake
from omnirouter.ingress.publishing import IngressPublisher
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import IngressSettings, KafkaSettings, RedisSettings, Settings
from support.kafka import TopicReader

PUBLIC_URL = "https://cx.example.com"
SECRETS: dict[str, Any] = {
    "public_url": PUBLIC_URL,
    "twilio_auth_token": SecretStr("12345678901234567890123456789012"),
    "meta_app_secret": SecretStr("meta-app-secret"),
    "meta_verify_token": SecretStr("meta-verify-token"),
    "mailgun_signing_key": SecretStr("key-mailgun-signing"),
    "sendgrid_token": SecretStr("sendgrid-shared-token"),
    "signing_secrets": {"crm": SecretStr("crm-shared-secret")},
    "max_body_bytes": 200_000,
}


@dataclass
class Gateway:
    """The gateway app in-process, and the topics it writes."""

    client: httpx.AsyncClient
    reader: TopicReader
    prefix: str
    settings: Settings
    context: ChannelContext

    def topic(self, key: str) -> str:
        return topic_spec(key).name(self.prefix)

    async def inbound(self, count: int) -> list[InteractionEvent]:
        topic = self.topic("interactions.inbound")
        return await self.reader.wait_for(
            lambda r: (lambda items: items if len(items) >= count else None)(
                r.decoded(topic, InteractionEvent)
            ),
            what=f"{count} inbound event(s)",
        )

    async def dead_letters(self, count: int) -> list[DeadLetter]:
        topic = self.topic("deadletter")
        return await self.reader.wait_for(
            lambda r: (lambda items: items if len(items) >= count else None)(
                r.decoded(topic, DeadLetter)
            ),
            what=f"{count} dead letter(s)",
        )


def gateway_settings(
    stack: StackAddresses,
    prefix: str,
    redis_prefix: str,
    tenants: dict[str, Any] | None = None,
    **ingress: Any,
) -> Settings:
    values = {**SECRETS, **ingress}
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix),
        redis=RedisSettings(url=stack.redis_url, key_prefix=redis_prefix),
        ingress=IngressSettings(**values),
        tenants=tenants or {},
    )


@pytest.fixture
async def gateway(
    stack: StackAddresses, unique_id: str, redis_prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[Gateway]:
    """The gateway; ``@pytest.mark.parametrize("gateway", [{...}], indirect=True)`` overrides
    ingress settings for a test (and ``tenants``, the tenants' business addresses)."""
    prefix = f"test.{unique_id}."
    settings = gateway_settings(stack, prefix, redis_prefix, **getattr(request, "param", {}))
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    redis_client = aioredis.Redis.from_url(stack.redis_url)
    publisher = IngressPublisher.connect(
        stack.kafka_bootstrap_servers,
        topic_prefix=prefix,
        timeout_s=settings.ingress.publish_timeout_s,
    )
    intake = Intake(
        publisher,
        ProviderRetries(redis_client, key_prefix=redis_prefix, ttl_s=settings.ingress.dedupe_ttl_s),
        retry_after_s=settings.ingress.retry_after_s,
    )
    context = ChannelContext(intake, settings, redis_client)
    app = create_ingress_app(context)
    topics = [topic_spec(k).name(prefix) for k in ("interactions.inbound", "deadletter")]
    try:
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
            ) as client,
            TopicReader(stack.kafka_bootstrap_servers, topics) as reader,
        ):
            yield Gateway(client, reader, prefix, settings, context)
    finally:
        await context.intake.aclose()
        await publisher.aclose()
        await redis_client.aclose()
