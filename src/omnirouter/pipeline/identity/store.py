"""Identity state in Redis: the thin edge around the two Lua scripts.

Each :meth:`RedisIdentityStore.resolve_batch` is one EVALSHA for a whole batch of one tenant;
every merge, guardrail check and idempotency check happens inside it, atomically, on the
tenant's hash slot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from omnirouter.events import Identifier, derived_event_id, identifier_from_address
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.redis_keys import IdentityKeys

# The processed-event window is kept in this many time slices (plus the current one).
_PROCESSED_BUCKETS = 10


def _lua(name: str) -> str:
    return resources.files("omnirouter.pipeline.identity").joinpath("lua", name).read_text()


def new_customer_id(event_id: uuid.UUID) -> str:
    """The id a customer first seen in ``event_id`` gets: the same on every replay."""
    return "cus_" + derived_event_id(event_id, "identity:new-customer").hex[:24]


def review_id_for(event_id: uuid.UUID) -> str:
    """The id of the merge review ``event_id`` raises, if it raises one."""
    return "rev_" + derived_event_id(event_id, "identity:review").hex[:24]


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """One event's normalized identifiers, to be attributed to a customer."""

    event_id: uuid.UUID
    identifiers: tuple[Identifier, ...]
    customer_hint: str | None = None


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """A merge as recorded in the survivor's history."""

    survivor_id: str
    absorbed_id: str
    moved: tuple[str, ...]
    linking: tuple[str, ...]
    event_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A merge the guardrails stopped."""

    review_id: str
    customer_ids: tuple[str, ...]
    resolved_to: str
    guardrail: str
    reason: str
    identifiers: tuple[str, ...]
    event_id: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class Resolution:
    """What resolving one event did."""

    customer_id: str
    is_new: bool
    replayed: bool
    merges: tuple[MergeRecord, ...] = ()
    reviews: tuple[ReviewItem, ...] = ()
    attached: tuple[str, ...] = ()
    not_attached: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Split:
    """What an unmerge restored."""

    survivor_id: str
    restored_id: str
    restored: tuple[str, ...]
    merge: MergeRecord


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer as identity knows it."""

    customer_id: str
    status: str
    seq: int
    merged_into: str | None
    identifiers: tuple[Identifier, ...]
    merges: tuple[MergeRecord, ...] = field(default=())


class UnmergeRefused(ValueError):  # noqa: N818 - reads as the outcome, like the HTTP status it maps to
    """The split cannot be made as asked; the message says why."""


class IdentityStore(Protocol):
    """Where identity state lives: resolving batches and operator splits."""

    async def resolve_batch(
        self, tenant: str, requests: Sequence[ResolveRequest]
    ) -> list[Resolution]:
        """Resolve each request to a customer, in order, atomically."""
        ...

    async def unmerge(self, tenant: str, customer_id: str, absorbed_id: str | None) -> Split:
        """Split ``absorbed_id`` (default: the latest merge) back out of ``customer_id``."""
        ...


def _as_list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {} rather than [].
    return value if isinstance(value, list) else []


def _merge(raw: dict[str, Any]) -> MergeRecord:
    return MergeRecord(
        survivor_id=raw["survivor"],
        absorbed_id=raw["absorbed"],
        moved=tuple(_as_list(raw.get("moved"))),
        linking=tuple(_as_list(raw.get("linking"))),
        event_id=raw["event_id"],
        at_ms=int(raw["at_ms"]),
    )


def _review(raw: dict[str, Any]) -> ReviewItem:
    return ReviewItem(
        review_id=raw["review_id"],
        customer_ids=tuple(_as_list(raw["customer_ids"])),
        resolved_to=raw["resolved_to"],
        guardrail=raw["guardrail"],
        reason=raw["reason"],
        identifiers=tuple(_as_list(raw["identifiers"])),
        event_id=raw["event_id"],
        created_at_ms=int(raw["created_at_ms"]),
    )


def _resolution(raw: bytes, replayed: bool) -> Resolution:
    data = orjson.loads(raw)
    return Resolution(
        customer_id=data["customer_id"],
        is_new=bool(data["is_new"]),
        replayed=replayed,
        merges=tuple(_merge(m) for m in _as_list(data.get("merges"))),
        reviews=tuple(_review(r) for r in _as_list(data.get("reviews"))),
        attached=tuple(_as_list(data.get("attached"))),
        not_attached=tuple((a, why) for a, why in _as_list(data.get("not_attached"))),
        notes=tuple(_as_list(data.get("notes"))),
    )


class RedisIdentityStore:
    """Identity state of every tenant in one Redis (or Redis Cluster: one slot per tenant)."""

    def __init__(self, client: aioredis.Redis, *, key_prefix: str, policy: IdentityPolicy) -> None:
        """Use ``client``; keys start with ``key_prefix``; guardrails come from ``policy``."""
        self._client = client
        self._prefix = key_prefix
        self._policy = policy
        self.policy = policy
        self._resolve = client.register_script(_lua("resolve.lua"))
        self._unmerge = client.register_script(_lua("unmerge.lua"))
        self._limits = {str(k): v for k, v in policy.max_customers_per_identifier.items()}
        self._bucket_ms = max(1000, policy.processed_retention_s * 1000 // _PROCESSED_BUCKETS)

    def keys(self, tenant: str) -> IdentityKeys:
        """The key layout of ``tenant``."""
        return IdentityKeys(self._prefix, tenant)

    async def resolve_batch(
        self, tenant: str, requests: Sequence[ResolveRequest]
    ) -> list[Resolution]:
        """Resolve each request to a customer, in order, in one round trip."""
        if not requests:
            return []
        keys = self.keys(tenant)
        payload = {
            "now": int(time.time() * 1000),
            "bucket_ms": self._bucket_ms,
            "buckets": _PROCESSED_BUCKETS,
            "max_ids": self._policy.max_identifiers_per_customer,
            "limits": self._limits,
            "events": [
                {
                    "id": str(r.event_id),
                    "new": new_customer_id(r.event_id),
                    "review": review_id_for(r.event_id),
                    "hint": r.customer_hint or "",
                    "ids": [[i.address, str(i.kind)] for i in r.identifiers],
                }
                for r in requests
            ],
        }
        results, replayed = await self._resolve(
            keys=keys.script_keys(), args=[keys.customer_stem, orjson.dumps(payload)]
        )
        return [_resolution(raw, bool(flag)) for raw, flag in zip(results, replayed, strict=True)]

    async def unmerge(self, tenant: str, customer_id: str, absorbed_id: str | None) -> Split:
        """Split ``absorbed_id`` (default: the latest merge) back out of ``customer_id``.

        Raises:
            UnmergeRefused: the customer is unknown, was itself merged, or has no such merge.
        """
        keys = self.keys(tenant)
        payload = {
            "survivor": customer_id,
            "absorbed": absorbed_id or "",
            "now": int(time.time() * 1000),
        }
        try:
            raw = await self._unmerge(
                keys=keys.script_keys(), args=[keys.customer_stem, orjson.dumps(payload)]
            )
        except ResponseError as exc:
            message = str(exc)
            code, _, text = message.partition(" ")
            if code in {"UNKNOWN", "MERGED", "NOMERGE"}:
                raise UnmergeRefused(text) from None
            raise
        data = orjson.loads(raw)
        return Split(
            survivor_id=data["survivor"],
            restored_id=data["restored_id"],
            restored=tuple(_as_list(data.get("restored"))),
            merge=_merge(data["merge"]),
        )

    async def customer(self, tenant: str, customer_id: str) -> CustomerRecord | None:
        """The customer ``customer_id`` names (following merges), or None when unknown."""
        keys = self.keys(tenant)
        root = customer_id
        for _ in range(10_000):
            nxt = await self._client.hget(keys.alias, root)
            if nxt is None:
                break
            root = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
        async with self._client.pipeline(transaction=True) as pipe:
            # Raw commands: redis-py 8.1's cluster MULTI hands read commands' cache hints to
            # their reply parsers, which refuse them (TypeError). One slot, so MULTI is fine.
            pipe.execute_command("HGETALL", keys.customer(root))
            pipe.execute_command("SMEMBERS", keys.customer_identifiers(root))
            pipe.execute_command("LRANGE", keys.customer_merges(root), 0, -1)
            fields, addresses, merges = await pipe.execute()
        if not fields:
            return None
        return CustomerRecord(
            customer_id=root,
            status=fields[b"status"].decode(),
            seq=int(fields[b"seq"]),
            merged_into=fields[b"merged_into"].decode() if b"merged_into" in fields else None,
            identifiers=tuple(identifier_from_address(a.decode()) for a in sorted(addresses)),
            merges=tuple(_merge(orjson.loads(m)) for m in merges),
        )

    async def open_reviews(self, tenant: str, *, limit: int = 100) -> list[ReviewItem]:
        """Merge reviews waiting for a person, oldest first."""
        keys = self.keys(tenant)
        ids: list[Any] = list(await self._client.zrange(keys.reviews_open, 0, limit - 1))
        if not ids:
            return []
        raw = await self._client.hmget(keys.reviews, ids)
        return [_review(orjson.loads(r)) for r in raw if r is not None]
