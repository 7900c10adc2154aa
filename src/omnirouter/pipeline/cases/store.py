"""Case state in Redis: the thin edge around the case Lua scripts.

A batch's updates go out as one pipeline (one script call per customer, each atomic on the
customer's hash slot): one network round trip per batch on a single Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from omnirouter.pipeline.cases.lifecycle import transition_table
from omnirouter.pipeline.scripts import ScriptCall, run_pipelined
from omnirouter.redis_keys import CustomerCaseKeys
from omnirouter.settings import CaseSettings

CustomerRef = tuple[str, str]
"""(tenant, customer_id)."""

# How far current_customers follows a chain of folds (each merge of a survivor into yet
# another customer adds a link): far beyond any real chain, but never an endless loop.
MAX_FOLD_LINKS = 100


def _lua(name: str) -> str:
    return resources.files("omnirouter.pipeline.cases").joinpath("lua", name).read_text()


def as_list(value: Any) -> list[Any]:
    """A JSON array from Lua's cjson, which encodes an empty array as {}."""
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What applying one entry did."""

    event_id: str
    type: str
    case_id: str
    transitions: tuple[dict[str, Any], ...]
    opened: str
    reopened: str
    moved_cases: tuple[str, ...]
    error: str
    replayed: bool


@dataclass(frozen=True, slots=True)
class CustomerUpdate:
    """One customer's outcome: per-entry results, the cases touched and the context parts."""

    folded_into: str
    outcomes: tuple[EntryOutcome, ...] = ()
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


def _outcome(raw: dict[str, Any]) -> EntryOutcome:
    return EntryOutcome(
        event_id=raw["event_id"],
        type=raw.get("type", ""),
        case_id=raw.get("case_id", ""),
        transitions=tuple(as_list(raw.get("transitions"))),
        opened=raw.get("opened", ""),
        reopened=raw.get("reopened", ""),
        moved_cases=tuple(as_list(raw.get("moved_cases"))),
        error=raw.get("error", ""),
        replayed=bool(raw.get("replayed")),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _update(raw: Sequence[Any]) -> CustomerUpdate:
    """The apply script's reply: a JSON head, then the documents as Redis holds them."""
    head_raw, cases_flat, profile_flat, timeline, agents = raw
    head = orjson.loads(head_raw)
    folded_into = head.get("folded_into") or ""
    outcomes = tuple(_outcome(r) for r in as_list(head.get("results")))
    if folded_into:
        return CustomerUpdate(folded_into=folded_into, outcomes=outcomes)
    cases = {
        _text(cases_flat[i]): orjson.loads(cases_flat[i + 1]) for i in range(0, len(cases_flat), 2)
    }
    context = {
        "profile": {
            _text(profile_flat[i]): _text(profile_flat[i + 1])
            for i in range(0, len(profile_flat), 2)
        },
        "timeline": list(timeline),  # JSON bytes, parsed where the context is built
        "agents": [_text(a) for a in agents],
        "contacts_in_window": int(head.get("contacts_in_window") or 0),
    }
    return CustomerUpdate(folded_into="", outcomes=outcomes, cases=cases, context=context)


class RedisCaseStore:
    """Cases, timelines and profiles of every customer in one Redis."""

    def __init__(self, client: aioredis.Redis, *, key_prefix: str, settings: CaseSettings) -> None:
        """Use ``client``; keys start with ``key_prefix``; limits come from ``settings``."""
        self._client = client
        self._prefix = key_prefix
        self._apply = client.register_script(_lua("apply.lua"))
        self._export = client.register_script(_lua("export.lua"))
        ttl_s = settings.timeline_ttl_days * 86400
        config = {
            "reopen_ms": settings.reopen_window_s * 1000,
            "timeline_max": settings.timeline_max_entries,
            "ttl_s": ttl_s,
            # A customer's keys expire ttl_s after their last activity, up to 1 % earlier: the
            # script sets a key's expiry again only once it has run down that far (see there).
            "ttl_refresh_below_s": ttl_s - ttl_s // 100,
            "context_n": settings.context_entries,
            "story_max": settings.story_max_fragments,
            "contacts_window_ms": settings.repeat_contact_window_days * 86_400_000,
            # Remember applied event ids well beyond the timeline's length: a replay of an
            # entry trimmed from the timeline must still be recognised.
            "seen_max": settings.timeline_max_entries * 4,
            "transitions": transition_table(),
        }
        # The same for every call: encoded once, sent as the script's second argument.
        self._config_json = orjson.dumps(config)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client (for reads and tests)."""
        return self._client

    def keys(self, tenant: str, customer_id: str) -> CustomerCaseKeys:
        """The key layout of one customer."""
        return CustomerCaseKeys(self._prefix, tenant, customer_id)

    async def apply(
        self, work: Mapping[CustomerRef, Sequence[dict[str, Any]]]
    ) -> dict[CustomerRef, CustomerUpdate]:
        """Apply each customer's entries in order; all customers in one pipelined round trip."""
        if not work:
            return {}
        refs = list(work)
        calls: list[ScriptCall] = []
        for tenant, customer_id in refs:
            payload = {
                "customer_id": customer_id,
                "tenant": tenant,
                "entries": list(work[(tenant, customer_id)]),
            }
            keys = self.keys(tenant, customer_id).script_keys()
            calls.append((keys, (orjson.dumps(payload), self._config_json)))
        raw = await run_pipelined(self._client, self._apply, calls)
        return {ref: _update(r) for ref, r in zip(refs, raw, strict=True)}

    async def export(self, tenant: str, absorbed_id: str, survivor_id: str) -> dict[str, Any]:
        """Mark ``absorbed_id`` folded into ``survivor_id`` and return what it hands over."""
        return (await self.export_many([(tenant, absorbed_id, survivor_id)]))[0]

    async def export_many(self, merges: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """``export`` for each (tenant, absorbed_id, survivor_id), in order, in one pipelined
        round trip (each script on its absorbed customer's slot)."""
        if not merges:
            return []
        calls: list[ScriptCall] = [
            (self.keys(tenant, absorbed_id).script_keys(), (survivor_id,))
            for tenant, absorbed_id, survivor_id in merges
        ]
        raw = await run_pipelined(self._client, self._export, calls)
        return [orjson.loads(r) for r in raw]

    async def current_customer(self, tenant: str, customer_id: str) -> str:
        """The customer that holds ``customer_id``'s cases now (following folds)."""
        ref = (tenant, customer_id)
        return (await self.current_customers({ref: customer_id}))[ref]

    async def current_customers(self, starts: Mapping[CustomerRef, str]) -> dict[CustomerRef, str]:
        """For each (tenant, customer), the customer that holds the cases of ``starts[ref]``
        now, following folds: one pipelined round trip per link of the longest chain, for all
        of them together (a batch's redirects used to cost a trip per link per customer)."""
        current = dict(starts)
        chasing = list(current)
        for _ in range(MAX_FOLD_LINKS):
            if not chasing:
                break
            async with self._client.pipeline(transaction=False) as pipe:
                for ref in chasing:
                    pipe.hget(self.keys(ref[0], current[ref]).state, "folded_into")
                found = await pipe.execute()
            following = []
            for ref, nxt in zip(chasing, found, strict=True):
                if nxt is not None:
                    current[ref] = _text(nxt)
                    following.append(ref)
            chasing = following
        return current

    async def read_customer(
        self, tenant: str, customer_id: str, *, timeline: int
    ) -> dict[str, Any]:
        """A customer's cases, profile, agents and last ``timeline`` entries (one round trip)."""
        keys = self.keys(tenant, customer_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.cases)
            pipe.hgetall(keys.profile)
            pipe.lrange(keys.timeline, -timeline, -1)
            pipe.zrevrange(keys.agents, 0, 9)
            pipe.hget(keys.state, "open_case")
            cases, profile, entries, agents, open_case = await pipe.execute()
        return {
            "cases": {k.decode(): orjson.loads(v) for k, v in cases.items()},
            "profile": {k.decode(): v.decode() for k, v in profile.items()},
            "timeline": [orjson.loads(e) for e in entries],
            "agents": [a.decode() for a in agents],
            "open_case": open_case.decode() if open_case else None,
        }
