"""Identity and case state as plain data, to compare a rebuilt state with the live one.

Exactly the state ``omnirouter replay`` rebuilds (see :mod:`omnirouter.ops.replay`), without
what only says *when* the state was written rather than what it is: processing timestamps of
customers, merges and reviews, and the time slices of the identity processed-event window.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from omnirouter.redis_keys import CustomerCaseKeys, IdentityKeys

_CLOCK_FIELDS = frozenset({"created_at_ms", "merged_at_ms", "at_ms"})


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _json(raw: Any) -> Any:
    # JSON documents compare by content: the key order Lua's cjson writes is not stable.
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _text(raw)
    return _without_clock(value) if isinstance(value, dict) else value


def _without_clock(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _CLOCK_FIELDS}


async def _plain(client: aioredis.Redis, key: str) -> Any:
    kind = _text(await client.type(key))
    if kind == "hash":
        fields = {_text(k): _json(v) for k, v in (await client.hgetall(key)).items()}
        return _without_clock(fields)
    if kind == "list":
        return [_json(v) for v in await client.lrange(key, 0, -1)]
    if kind == "set":
        return sorted(_text(m) for m in await client.smembers(key))
    if kind == "zset":
        scored: list[Any] = await client.zrange(key, 0, -1, withscores=True)
        return [(_text(member), score) for member, score in scored]
    if kind == "string":
        return _json(await client.get(key))
    return None


async def export_identity(client: aioredis.Redis, key_prefix: str, tenant: str) -> dict[str, Any]:
    """A tenant's identifier owners, guardrail counts, aliases, splits, reviews, erasures made
    and customers."""
    keys = IdentityKeys(key_prefix, tenant)
    state: dict[str, Any] = {
        "owner": await _plain(client, keys.identifier_owner),
        "joins": await _plain(client, keys.identifier_joins),
        "alias": await _plain(client, keys.alias),
        "sequence": await _plain(client, keys.sequence),
        "split": await _plain(client, keys.split_pairs),
        "reviews": await _plain(client, keys.reviews),
        "open_reviews": sorted(_text(m) for m in await client.zrange(keys.reviews_open, 0, -1)),
        "erasures": await _plain(client, keys.erasures),
    }
    customers: dict[str, Any] = {}
    stem = keys.customer_stem
    async for raw in client.scan_iter(match=_glob(stem) + "*", count=1000):
        key = _text(raw)
        customers[key[len(stem) :]] = await _plain(client, key)
    state["customers"] = dict(sorted(customers.items()))
    return state


async def export_cases(client: aioredis.Redis, key_prefix: str, tenant: str) -> dict[str, Any]:
    """Every customer's cases, timeline, profile, contacts, agents, threads and applied ids."""
    stem = CustomerCaseKeys(key_prefix, tenant, "").tag[:-1]  # "{prefix:cus:tenant:"
    found: dict[str, Any] = {}
    async for raw in client.scan_iter(match=_glob(stem) + "*", count=1000):
        key = _text(raw)
        found[key] = await _plain(client, key)
    return dict(sorted(found.items()))


async def export_state(
    client: aioredis.Redis, key_prefix: str, tenants: tuple[str, ...] = ("default",)
) -> dict[str, Any]:
    """Identity and case state of ``tenants``, comparable with ``==``."""
    return {
        tenant: {
            "identity": await export_identity(client, key_prefix, tenant),
            "cases": await export_cases(client, key_prefix, tenant),
        }
        for tenant in tenants
    }


def _glob(literal: str) -> str:
    # SCAN MATCH is a glob: escape its special characters in the literal part.
    return "".join("\\" + c if c in "*?[]\\" else c for c in literal)
