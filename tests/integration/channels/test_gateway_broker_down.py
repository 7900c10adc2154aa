"""With the broker stopped, the gateway answers 503 and never 2xx for an event it did not write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import redis.asyncio as aioredis

from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.connections import ensure_topics
from omnirouter.devstack import DevStack, StackAddresses
from omnirouter.events import InteractionEvent, topic_spec
from omnirouter.ingress.app import create_ingress_app
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.ingress.intake import Intake
from omnirouter.ingress.publishing import IngressPublisher
from omnirouter.redis_keys import ingress_seen_key
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import DevstackSettings
from support.kafka import TopicReader

pytestmark = pytest.mark.integration

TOKEN = "12345678901234567890123456789012"


def sms(n: int) -> dict[str, str]:
    return {
        "MessageSid": f"SM{n:032d}",
        "From": "+15550102345",
        "To": "+15017122661",
        "Body": f"message {n}",
    }


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[tuple[DevStack, StackAddresses]]:
    """A Kafka of this test's own, so stopping it disturbs nobody else."""
    stack = DevStack(DevstackSettings(state_dir=tmp_path / "stack"), tie_to_parent=True)
    addresses = stack.up()
    try:
        yield stack, addresses
    finally:
        stack.down()


async def test_endpoints_answer_503_while_the_broker_is_down(
    own_broker, stack: StackAddresses, redis_prefix: str
) -> None:  # type: ignore[no-untyped-def]
    from support.channels import gateway_settings_for

    devstack, addresses = own_broker
    settings = gateway_settings_for(
        addresses, "down.", redis_prefix, publish_timeout_s=2, retry_after_s=7
    )
    ensure_topics(
        addresses.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings)],
    )
    publisher = IngressPublisher.connect(
        addresses.kafka_bootstrap_servers, topic_prefix="down.", timeout_s=2
    )
    redis_client = aioredis.Redis.from_url(stack.redis_url)
    retries = ProviderRetries(redis_client, key_prefix=redis_prefix, ttl_s=60)
    intake = Intake(publisher, retries, retry_after_s=7)
    app = create_ingress_app(ChannelContext(intake, settings, redis_client))
    url = "https://cx.example.com/webhooks/twilio/messages"

    async def post(fields: dict[str, str]) -> httpx.Response:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TOKEN, url, fields.items()),
        }
        return await client.post(
            "/webhooks/twilio/messages", content=urlencode(fields), headers=headers
        )

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://cx.example.com"
        ) as client:
            assert (await post(sms(1))).status_code == 200  # the broker is up
            inbound = topic_spec("interactions.inbound").name("down.")
            async with TopicReader(addresses.kafka_bootstrap_servers, [inbound]) as reader:
                await reader.wait_for(
                    lambda r: r.decoded(inbound, InteractionEvent), what="the first event"
                )

            devstack.stop_kafka()

            answers = [await post(sms(n)) for n in (2, 3, 4)]
            assert [a.status_code for a in answers] == [503, 503, 503]
            assert all(a.headers["Retry-After"] == "7" for a in answers)
            assert "did not acknowledge" in answers[0].json()["detail"]
            # Not recorded as published: the provider's retry will be written once Kafka is back.
            # (Records are deferred; a check sends whatever was deferred ahead of itself.)
            for n in (2, 3, 4):
                assert not await retries.already_published("twilio", f"SM{n:032d}")
                assert not await redis_client.exists(
                    ingress_seen_key(redis_prefix, "twilio", f"SM{n:032d}")
                )
            # The one Kafka took is recorded: the check above is not blind.
            assert await retries.already_published("twilio", f"SM{1:032d}")
    finally:
        await intake.aclose()
        await publisher.aclose()
        await redis_client.aclose()
    # Closed with records the stopped broker never acknowledged: the producer's sender stops
    # too, instead of reconnecting to the missing broker for the rest of the process.
    assert not [t for t in asyncio.all_tasks() if "_sender_routine" in repr(t.get_coro())]


async def _accepted(response: Awaitable[httpx.Response]) -> httpx.Response | None:
    answer = await response
    return answer if answer.status_code == 200 else None
