"""Reading every key under a prefix as plain data, to compare state before and after."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis


def _value(raw: Any) -> Any:
    # JSON documents compare by content: the key order Lua's cjson writes is not stable.
    if isinstance(raw, bytes | str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


async def snapshot_keys(client: aioredis.Redis, prefix: str) -> dict[bytes, Any]:
    """Key -> content for every key whose name contains ``prefix`` (TTLs are not compared)."""
    state: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=f"*{prefix}*", count=1000):
        kind = (await client.type(key)).decode()
        if kind == "string":
            state[key] = _value(await client.get(key))
        elif kind == "hash":
            state[key] = {k: _value(v) for k, v in (await client.hgetall(key)).items()}
        elif kind == "list":
            state[key] = [_value(v) for v in await client.lrange(key, 0, -1)]
        elif kind == "set":
            state[key] = await client.smembers(key)
        elif kind == "zset":
            state[key] = await client.zrange(key, 0, -1, withscores=True)
        else:
            state[key] = kind
    return state
