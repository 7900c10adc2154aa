"""Queue depth, oldest wait and agents by presence, read from the routing state in Redis.

A Prometheus collector cannot await, so :class:`QueueStateCollector` exports the last
snapshot taken by :meth:`QueueStateCollector.refresh` (the serve process refreshes it before
each /metrics answer and on the dashboard's sampling tick). Reading is one round trip for the
tenant list, then two per tenant (agents, and every queue in one pipeline).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from omnirouter.logs import get_logger
from omnirouter.pipeline.routing.operations import PRESENCES
from omnirouter.pipeline.routing.rules import RoutingRules
from omnirouter.pipeline.routing.store import RoutingStore

log = get_logger(__name__)


def enqueued_from_score(score: float) -> float:
    """When a waiting case was enqueued (epoch seconds), from its queue score.

    The inverse of ``routing.store.queue_score``: the integer part is the (negated) priority,
    the fraction the enqueue second / 1e10.
    """
    return (score - math.floor(score)) * 1e10


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue of one tenant as it stands."""

    tenant: str
    queue: str
    depth: int
    oldest_wait_s: float
    sla_first_response_s: int


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    """Every queue and the agents by presence, at ``taken_at`` (epoch seconds)."""

    taken_at: float = 0.0
    queues: tuple[QueueState, ...] = ()
    agents: dict[tuple[str, str], int] = field(default_factory=dict)


class QueueStateCollector(Collector):
    """Exports ``omnirouter_queue_depth``, ``omnirouter_queue_oldest_wait_seconds``,
    ``omnirouter_queue_sla_seconds`` and ``omnirouter_agents`` from the last snapshot."""

    def __init__(self, store: RoutingStore, rules: RoutingRules) -> None:
        """Read ``store`` for the queues of ``rules``."""
        self._store = store
        self._rules = rules
        self.snapshot = RoutingSnapshot()
        #: Why the last refresh failed (None when it worked).
        self.error: str | None = None

    async def refresh(self) -> RoutingSnapshot:
        """Read the routing state again; with Redis unreachable, keep the last snapshot
        (/metrics must still answer with everything else, and ``taken_at`` shows its age)."""
        try:
            self.snapshot = await self._read()
        except (RedisError, OSError) as exc:
            if self.error is None:
                log.warning("routing state unreadable", error=f"{type(exc).__name__}: {exc}")
            self.error = f"{type(exc).__name__}: {exc}"[:300]
        else:
            self.error = None
        return self.snapshot

    async def _read(self) -> RoutingSnapshot:
        now = time.time()
        queues: list[QueueState] = []
        agents: dict[tuple[str, str], int] = {}
        for tenant in await self._store.tenants():
            for presence in PRESENCES:
                agents[(tenant, presence)] = 0
            for agent in await self._store.agents(tenant):
                agents[(tenant, agent.presence)] = agents.get((tenant, agent.presence), 0) + 1
            keys = self._store.keys(tenant)
            async with self._store.client.pipeline(transaction=False) as pipe:
                for queue in self._rules.queues:
                    # Priority orders a queue before age: the oldest case is not always first.
                    pipe.zrange(keys.queue(queue.id), 0, -1, withscores=True)
                members: list[list[tuple[Any, float]]] = await pipe.execute()
            for queue, waiting in zip(self._rules.queues, members, strict=True):
                oldest = min((enqueued_from_score(s) for _, s in waiting), default=now)
                queues.append(
                    QueueState(
                        tenant,
                        queue.id,
                        len(waiting),
                        max(0.0, now - oldest),
                        queue.sla.first_response_s,
                    )
                )
        return RoutingSnapshot(now, tuple(queues), agents)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The last snapshot as Prometheus gauges."""
        snap = self.snapshot
        depth = GaugeMetricFamily(
            "omnirouter_queue_depth", "Cases waiting in a queue.", labels=["tenant", "queue"]
        )
        oldest = GaugeMetricFamily(
            "omnirouter_queue_oldest_wait_seconds",
            "How long the longest-waiting case of a queue has waited (0 when empty).",
            labels=["tenant", "queue"],
        )
        sla = GaugeMetricFamily(
            "omnirouter_queue_sla_seconds",
            "The queue's first-response SLA (from the routing rules).",
            labels=["tenant", "queue"],
        )
        for q in snap.queues:
            depth.add_metric([q.tenant, q.queue], q.depth)
            oldest.add_metric([q.tenant, q.queue], q.oldest_wait_s)
            sla.add_metric([q.tenant, q.queue], q.sla_first_response_s)
        agents = GaugeMetricFamily(
            "omnirouter_agents", "Agents by presence.", labels=["tenant", "presence"]
        )
        for (tenant, presence), n in sorted(snap.agents.items()):
            agents.add_metric([tenant, presence], n)
        yield from (depth, oldest, sla, agents)
