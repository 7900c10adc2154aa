"""Provider retries: a message already published is acknowledged again, not published again."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from omnirouter.ingress.pipelining import CommandBatcher
from omnirouter.logs import get_logger
from omnirouter.redis_keys import ingress_seen_key

log = get_logger(__name__)


class ProviderRetries:
    """Remembers provider message ids once their event was written to Kafka.

    Both commands go out in pipelines shared with the requests in flight (see pipelining); the
    record is deferred, not awaited. Fails open: with Redis unavailable (or a record not yet
    written) a retry is published again, and the deterministic event id lets downstream stages
    drop the duplicate. A retry is never lost to this check.
    """

    def __init__(self, client: aioredis.Redis, *, key_prefix: str, ttl_s: int) -> None:
        """Keys under ``key_prefix``, kept ``ttl_s`` (the providers' retry window)."""
        self._redis = CommandBatcher(client)
        self._prefix = key_prefix
        self._ttl_s = ttl_s

    async def already_published(self, provider: str, message_id: str) -> bool:
        """True when this provider message was published before."""
        try:
            key = ingress_seen_key(self._prefix, provider, message_id)
            return bool(await self._redis.execute(lambda pipe: pipe.exists(key)))
        except RedisError as exc:
            log.warning("retry check unavailable", error=str(exc))
            return False

    async def aclose(self) -> None:
        """Write the records still deferred (before the Redis client is closed)."""
        await self._redis.aclose()

    def remember(self, provider: str, message_id: str) -> None:
        """Record that the message is in Kafka (only ever called after the acknowledgement).

        Deferred to the next batch of commands: the request answers without waiting for it.
        """
        key = ingress_seen_key(self._prefix, provider, message_id)
        self._redis.defer(lambda pipe: pipe.set(key, b"1", ex=self._ttl_s))
