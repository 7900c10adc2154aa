"""Routing state in Redis: agents, reservations, queues and timers, via atomic Lua scripts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from omnirouter.events import Channel
from omnirouter.pipeline.routing.decide import AgentState, RoutingRequest
from omnirouter.pipeline.scripts import ScriptCall, run_pipelined
from omnirouter.redis_keys import RoutingKeys, routing_tenants_key


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lua(name: str) -> str:
    return resources.files("omnirouter.pipeline.routing").joinpath("lua", name).read_text()


def millis(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def _moment(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(float(ms) / 1000, tz=UTC) if ms else None


def request_to_json(request: RoutingRequest) -> bytes:
    """A routing request as stored with a waiting case."""
    data = asdict(request)
    for key in ("opened_at", "enqueued_at"):
        data[key] = millis(data[key]) if data[key] else None
    data["channel"] = str(request.channel)
    return orjson.dumps(data)


def request_from_json(raw: bytes | str) -> RoutingRequest:
    """The routing request stored with a waiting case."""
    data = orjson.loads(raw)
    for key in ("intents", "previous_agents", "declined_by"):
        data[key] = tuple(data.get(key) or ())
    data["attributes"] = dict(data.get("attributes") or {})
    data["channel"] = Channel(data["channel"])
    opened = _moment(data["opened_at"])
    data["opened_at"] = opened if opened is not None else datetime.fromtimestamp(0, tz=UTC)
    data["enqueued_at"] = _moment(data.get("enqueued_at"))
    return RoutingRequest(**data)


def _agent(raw: bytes, load: dict[str, int]) -> AgentState:
    a = orjson.loads(raw)
    agent_id = a["agent_id"]
    skills = a.get("skills") if isinstance(a.get("skills"), dict) else {}
    capacity = a.get("capacity") if isinstance(a.get("capacity"), dict) else {}
    languages = a.get("languages") if isinstance(a.get("languages"), list) else []
    return AgentState(
        agent_id=agent_id,
        presence=a.get("presence", "offline"),
        skills={str(k): int(v) for k, v in skills.items()},
        languages=tuple(languages),
        capacity={str(k): int(v) for k, v in capacity.items()},
        load={
            ch: n
            for (ag, ch), n in ((k.split("|", 1), v) for k, v in load.items())
            if ag == agent_id
        },
        idle_since=_moment(a.get("idle_since")),
    )


class RoutingStore:
    """Agents, offers, assignments, queues and timers of every tenant."""

    def __init__(self, client: aioredis.Redis, *, key_prefix: str) -> None:
        """Use ``client``; keys start with ``key_prefix``."""
        self.client = client
        self._prefix = key_prefix
        self._known_tenants: set[str] = set()
        self._route = client.register_script(_lua("route.lua"))
        self._respond = client.register_script(_lua("respond.lua"))
        self._release = client.register_script(_lua("release.lua"))
        self._timers = client.register_script(_lua("timers.lua"))
        self._presence = client.register_script(_lua("presence.lua"))
        self._assign = client.register_script(_lua("assign.lua"))

    def keys(self, tenant: str) -> RoutingKeys:
        """The key layout of ``tenant``."""
        return RoutingKeys(self._prefix, tenant)

    async def agents(self, tenant: str) -> list[AgentState]:
        """Every agent of the tenant with their load (one round trip)."""
        keys = self.keys(tenant)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.agents)
            pipe.hgetall(keys.load)
            agents, load = await pipe.execute()
        counts = {_text(k): int(v) for k, v in load.items()}
        return [_agent(raw, counts) for raw in agents.values()]

    async def agents_of(self, tenants: Sequence[str]) -> dict[str, list[AgentState]]:
        """Every agent of each tenant with their load, all tenants in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                keys = self.keys(tenant)
                pipe.hgetall(keys.agents)
                pipe.hgetall(keys.load)
            replies = await pipe.execute()
        out: dict[str, list[AgentState]] = {}
        for index, tenant in enumerate(tenants):
            agents, load = replies[2 * index], replies[2 * index + 1]
            counts = {_text(k): int(v) for k, v in load.items()}
            out[tenant] = [_agent(raw, counts) for raw in agents.values()]
        return out

    async def upsert_agent(
        self,
        tenant: str,
        agent_id: str,
        *,
        presence: str = "",
        profile: dict[str, Any] | None = None,
        now: datetime,
    ) -> AgentState:
        """Create or update an agent's profile and/or presence."""
        keys = self.keys(tenant)
        await self.client.sadd(routing_tenants_key(self._prefix), tenant)
        payload = {
            "agent_id": agent_id,
            "presence": presence,
            "profile": profile,
            "now": millis(now),
        }
        raw = await self._presence(keys=keys.script_keys(), args=[orjson.dumps(payload)])
        load = await self.client.hgetall(keys.load)
        return _agent(raw, {_text(k): int(v) for k, v in load.items()})

    async def route(self, tenant: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Offer or queue one case (see route.lua for the payload)."""
        keys = self.keys(tenant)
        raw = await self._route(
            keys=keys.script_keys(), args=[keys.queue_stem, orjson.dumps(payload)]
        )
        result: dict[str, Any] = orjson.loads(raw)
        return result

    async def route_many(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Offer or queue many cases, in order, in one pipelined round trip: (tenant, payload)
        pairs as for ``route``; each script stays atomic on its tenant's hash slot."""
        return await self._run_many(self._route, calls)

    async def _run_many(
        self, script: AsyncScript, calls: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Run ``script`` once per (tenant, payload), in order, in one pipelined round trip."""
        if not calls:
            return []
        script_calls: list[ScriptCall] = []
        for tenant, payload in calls:
            keys = self.keys(tenant)
            script_calls.append((keys.script_keys(), (keys.queue_stem, orjson.dumps(payload))))
        replies = await run_pipelined(self.client, script, script_calls)
        return [orjson.loads(raw) for raw in replies]

    async def mark_announced(self, causes: Mapping[str, Mapping[str, str]]) -> None:
        """Record, per tenant, case_id -> the cause whose decision Kafka acknowledged (one
        pipelined round trip), so a redelivery of that cause announces nothing again."""
        if not causes:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for tenant, by_case in causes.items():
                for case_id, cause in by_case.items():
                    pipe.hset(self.keys(tenant).announced, case_id, cause)
            await pipe.execute()

    async def respond(
        self, tenant: str, case_id: str, agent_id: str, action: str, now: datetime
    ) -> dict[str, Any]:
        """Accept, decline or expire an offer."""
        keys = self.keys(tenant)
        payload = {"case_id": case_id, "agent": agent_id, "action": action, "now": millis(now)}
        raw = await self._respond(
            keys=keys.script_keys(), args=[keys.queue_stem, orjson.dumps(payload)]
        )
        result: dict[str, Any] = orjson.loads(raw)
        return result

    async def release(self, tenant: str, case_id: str, now: datetime) -> dict[str, Any]:
        """Take a case out of routing and free its agent's capacity."""
        (result,) = await self.release_many(tenant, [case_id], now)
        return result

    async def release_many(
        self, tenant: str, case_ids: Sequence[str], now: datetime
    ) -> list[dict[str, Any]]:
        """``release`` for each case, in order, in one pipelined round trip."""
        calls = [(tenant, {"case_id": case_id, "now": millis(now)}) for case_id in case_ids]
        return await self._run_many(self._release, calls)

    async def assign(
        self, tenant: str, case_id: str, agent_id: str, channel: str, queue: str, now: datetime
    ) -> str:
        """Give a case straight to ``agent_id``; returns the agent who held it before ("")."""
        keys = self.keys(tenant)
        payload = {
            "case_id": case_id,
            "agent": agent_id,
            "channel": channel,
            "queue": queue,
            "now": millis(now),
        }
        raw = await self._assign(
            keys=keys.script_keys(), args=[keys.queue_stem, orjson.dumps(payload)]
        )
        return str(orjson.loads(raw)["previous"])

    async def due_timers(
        self, tenant: str, now: datetime, *, lease_s: float = 30.0, limit: int = 200
    ) -> list[tuple[str, str]]:
        """Claim due timers: (kind, case_id) pairs."""
        keys = self.keys(tenant)
        raw = await self._timers(
            keys=keys.script_keys(), args=[millis(now), int(lease_s * 1000), limit]
        )
        claimed = []
        for member in raw:
            kind, _, case_id = _text(member).partition("|")
            claimed.append((kind, case_id))
        return claimed

    async def forget_timer(self, tenant: str, kind: str, case_id: str) -> None:
        """Drop a timer whose handler finished without replacing it."""
        await self.client.zrem(self.keys(tenant).timers, f"{kind}|{case_id}")

    async def note_tenant(self, tenant: str) -> None:
        """Remember that ``tenant`` has routing state (once per process and tenant)."""
        if tenant not in self._known_tenants:
            await self.client.sadd(routing_tenants_key(self._prefix), tenant)
            self._known_tenants.add(tenant)

    async def tenants(self) -> list[str]:
        """Tenants with routing state."""
        members = await self.client.smembers(routing_tenants_key(self._prefix))
        return sorted(_text(t) for t in members)

    async def waiting_request(self, tenant: str, case_id: str) -> RoutingRequest | None:
        """The stored request of a queued or offered case."""
        raw = await self.client.hget(self.keys(tenant).waiting, case_id)
        return request_from_json(raw) if raw else None

    async def queue_view(
        self, tenant: str, queue_id: str, *, limit: int = 100
    ) -> list[tuple[RoutingRequest, float]]:
        """Waiting cases of a queue, first to be served first, with their scores."""
        keys = self.keys(tenant)
        members: list[Any] = list(
            await self.client.zrange(keys.queue(queue_id), 0, limit - 1, withscores=True)
        )
        if not members:
            return []
        raw = await self.client.hmget(keys.waiting, [m[0] for m in members])
        return [
            (request_from_json(r), float(m[1]))
            for m, r in zip(members, raw, strict=True)
            if r is not None
        ]

    async def offers(self, tenant: str) -> dict[str, dict[str, Any]]:
        """Open offers: case_id -> offer."""
        raw = await self.client.hgetall(self.keys(tenant).offers)
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    async def assignments(self, tenant: str) -> dict[str, dict[str, Any]]:
        """Current assignments: case_id -> assignment."""
        raw = await self.client.hgetall(self.keys(tenant).assigned)
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    async def load(self, tenant: str) -> dict[str, int]:
        """ "agent|channel" -> cases held or offered."""
        raw = await self.client.hgetall(self.keys(tenant).load)
        return {_text(k): int(v) for k, v in raw.items()}

    async def handle_time(self, tenant: str, queue_id: str) -> float | None:
        """The queue's recent average handling time in seconds, if any case was handled."""
        raw = await self.client.hget(self.keys(tenant).stats, queue_id)
        if raw is None:
            return None
        value = float(orjson.loads(raw).get("avg_handle_s", 0))
        return value if value > 0 else None


def queue_score(priority: int, enqueued_at: datetime) -> float:
    """Sort key of a waiting case: higher priority first, then the longer wait.

    The integer part orders priority, the fraction the enqueue second, so both fit the
    precision of a Redis score.
    """
    return -priority + enqueued_at.timestamp() / 1e10


def capacities(
    agents: Sequence[AgentState], channel: Channel, default: dict[Channel, int]
) -> dict[str, int]:
    """Each agent's capacity for ``channel`` (their own override, else the rules')."""
    return {a.agent_id: a.capacity.get(str(channel), default.get(channel, 1)) for a in agents}
