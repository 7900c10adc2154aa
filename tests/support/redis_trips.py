"""Counting the network round trips a Redis client makes (what "one round trip" means)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection


class CountingConnection(Connection):
    """A connection that counts every write to the socket: one per command or pipeline."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


def counting_client(url: str) -> aioredis.Redis:
    """A client whose round trips are counted in ``CountingConnection.sends``."""
    pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    # from_pool: closing the client closes the pool and its connections too.
    return aioredis.Redis.from_pool(pool)
