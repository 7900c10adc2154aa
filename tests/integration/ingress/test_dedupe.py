"""The gateway's retry check on a real redis-server: batched, correct, and failing open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from omnirouter.devstack import StackAddresses
from omnirouter.devstack.network import free_port
from omnirouter.ingress.dedupe import ProviderRetries
from omnirouter.redis_keys import ingress_seen_key

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

    await asyncio.gather(*(retries.remember("twilio", sid) for sid in sent[::2]))
    answers = await asyncio.gather(*(retries.already_published("twilio", sid) for sid in sent))

    assert answers == [n % 2 == 0 for n in range(500)]
    ttl = redis_client.ttl(ingress_seen_key(redis_prefix, "twilio", sent[0]))
    assert 0 < ttl <= 600


async def test_with_redis_unreachable_every_message_counts_as_new(redis_prefix: str) -> None:
    """Fails open: no retry is lost to the check, and remembering never fails the request."""
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        retries = ProviderRetries(client, key_prefix=redis_prefix, ttl_s=60)
        await retries.remember("twilio", "SM1")
        answers = await asyncio.gather(
            *(retries.already_published("twilio", f"SM{n}") for n in range(5))
        )
    finally:
        await client.aclose()

    assert answers == [False] * 5
