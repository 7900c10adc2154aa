"""The gateway's retry check on a real redis-server: batched, correct, and failing open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.redis_keys import ingress_seen_key
from support.waiting import eventually_async

pytestmark = pytest.mark.integration


@pytest.fixture
async def small_pool(stack: StackAddresses) -> AsyncIterator[aioredis.Redis]:
    """A client allowed two connections: more commands at once than that raise, unbatched."""
    client = aioredis.Redis.from_url(stack.redis_url, max_connections=2)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_burst_of_requests_shares_pipelines_and_each_gets_its_own_answer(
    small_pool: aioredis.Redis, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """500 requests at once on a two-connection pool: none fails open, every answer is its own
    message's, and the records carry the retry window."""
    retries = ProviderRetries(small_pool, key_prefix=redis_prefix, ttl_s=600)
    sent = [f"SM{n:032d}" for n in range(500)]

    for sid in sent[::2]:
        retries.remember("twilio", sid)
    answers = await asyncio.gather(*(retries.already_published("twilio", sid) for sid in sent))
    await retries.aclose()

    assert answers == [n % 2 == 0 for n in range(500)]
    ttl = redis_client.ttl(ingress_seen_key(redis_prefix, "twilio", sent[0]))
    assert 0 < ttl <= 600


async def test_with_redis_unreachable_every_message_counts_as_new(redis_prefix: str) -> None:
    """Fails open: no retry is lost to the check, and remembering never fails the request."""
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        retries = ProviderRetries(client, key_prefix=redis_prefix, ttl_s=60)
        retries.remember("twilio", "SM1")
        answers = await asyncio.gather(
            *(retries.already_published("twilio", f"SM{n}") for n in range(5))
        )
        await retries.aclose()  # the deferred record fails too, and is only logged
    finally:
        await client.aclose()

    assert answers == [False] * 5


class CountedPipelines:
    """A client whose pipelines are counted (one per round trip the batcher makes)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.pipelines = 0

    def pipeline(self, **kwargs: Any) -> Any:
        self.pipelines += 1
        return self.client.pipeline(**kwargs)


async def test_records_ride_with_the_next_check_and_a_retry_right_after_is_seen(
    stack: StackAddresses, redis_prefix: str
) -> None:
    """The record of a published message is not awaited: it goes in the pipeline of the next
    check, ahead of it, so a provider retry arriving at once is still known."""
    client = aioredis.Redis.from_url(stack.redis_url)
    counted = CountedPipelines(client)
    try:
        retries = ProviderRetries(counted, key_prefix=redis_prefix, ttl_s=600)  # type: ignore[arg-type]
        for n in range(100):
            retries.remember("twilio", f"SM{n}")
        seen = await retries.already_published("twilio", "SM99")
        await retries.aclose()
    finally:
        await client.aclose()

    assert seen
    assert counted.pipelines == 1


async def test_a_record_with_no_check_after_it_is_still_written(
    stack: StackAddresses, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        retries = ProviderRetries(client, key_prefix=redis_prefix, ttl_s=600)
        retries.remember("twilio", "SM-last")
        key = ingress_seen_key(redis_prefix, "twilio", "SM-last")
        await eventually_async(lambda: client.exists(key), what="the deferred record")
        await retries.aclose()
    finally:
        await client.aclose()


async def test_closing_writes_the_records_still_deferred(
    stack: StackAddresses, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """A stopping gateway writes what it deferred before its Redis client closes."""
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        retries = ProviderRetries(client, key_prefix=redis_prefix, ttl_s=600)
        for n in range(3):
            retries.remember("twilio", f"SM-closing-{n}")
        await retries.aclose()
    finally:
        await client.aclose()

    keys = [ingress_seen_key(redis_prefix, "twilio", f"SM-closing-{n}") for n in range(3)]
    assert redis_client.exists(*keys) == 3
