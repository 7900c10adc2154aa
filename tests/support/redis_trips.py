"""Counting the network round trips a Redis client makes (what "one round trip" means)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from support.stack import REDIS_CLUSTER


class CountingConnection(Connection):
    """A connection that counts every write to the socket: one per command or pipeline."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


def counting_client(url: str) -> aioredis.Redis:
    """A client whose round trips are counted in ``CountingConnection.sends``.

    On a Redis Cluster every node's connections count: a pipeline is one round trip to each
    master it has commands for.
    """
    if REDIS_CLUSTER:
        cluster = aioredis.RedisCluster.from_url(url)
        # The cluster client makes a pool per node as it finds them, from these arguments.
        cluster.nodes_manager.connection_kwargs["connection_class"] = CountingConnection
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = CountingConnection
        return cluster  # type: ignore[return-value]  # same commands, see security.redis_client
    pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    # from_pool: closing the client closes the pool and its connections too.
    return aioredis.Redis.from_pool(pool)


class _CountingCommands:
    """Counts the commands a client sends (a pipeline counts once)."""

    round_trips = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return await super().execute_command(*args, **options)  # type: ignore[misc]


class CountingRedis(_CountingCommands, aioredis.Redis):
    """A single-node client that counts its commands in ``round_trips``."""


class CountingRedisCluster(_CountingCommands, aioredis.RedisCluster):
    """A Redis Cluster client that counts its commands in ``round_trips``."""


def counting_redis(url: str) -> CountingRedis:
    """A client of the session's kind of Redis that counts its commands in ``round_trips``."""
    if REDIS_CLUSTER:
        return CountingRedisCluster.from_url(url)  # type: ignore[return-value]  # same commands
    return CountingRedis.from_url(url)
