"""Routing every new case of a case-worker batch in three round trips, not four per case.

Agents are read once per tenant, each next decision sees the reservations the previous ones
make (``reserve_locally``), all route.lua calls go out as one pipeline, and all case status
entries as one more. Decisions, reasons and event ids are those of routing the cases one after
another with ``RoutingEngine.route``: only a reservation that changed under us meanwhile (another
worker, an agent's click) shows, as it would there, as ``reserved_next`` or ``all_taken``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnirouter.events import CaseEvent, RoutingDecision
from omnirouter.ops.metrics import observed
from omnirouter.pipeline.cases.operations import apply_and_describe, describe_update
from omnirouter.pipeline.cases.store import CustomerRef, CustomerUpdate
from omnirouter.pipeline.routing.decide import AgentState, RoutingRequest
from omnirouter.pipeline.routing.engine import RoutingEngine
from omnirouter.pipeline.routing.planning import (
    RoutePlan,
    Verdict,
    announcement,
    plan_route,
    reserve_locally,
    verdict_of,
)
from omnirouter.pipeline.stream import Outgoing


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case the case worker hands to routing, and the stream event that caused it."""

    request: RoutingRequest
    cause: str
    replay_only: bool = False


@dataclass(frozen=True, slots=True)
class _Announcing:
    index: int
    plan: RoutePlan
    verdict: Verdict
    routing: RoutingDecision
    entry: dict[str, Any]

    @property
    def ref(self) -> CustomerRef:
        return (self.plan.request.tenant, self.plan.request.customer_id)


@observed("routing")
async def route_new_cases(
    engine: RoutingEngine, cases: Sequence[NewCase], *, now: datetime | None = None
) -> list[list[Outgoing]]:
    """Route ``cases`` in order (causes repeatable: stream events); the records to publish
    for each case, in the same order."""
    if not cases:
        return []
    now = now or datetime.now(UTC)
    tenants = list(dict.fromkeys(c.request.tenant for c in cases))
    for tenant in tenants:
        await engine.store.note_tenant(tenant)  # a round trip only a process's first time
    agents: dict[str, list[AgentState]] = await engine.store.agents_of(tenants)
    plans: list[RoutePlan] = []
    for case in cases:
        tenant = case.request.tenant
        plan = plan_route(
            engine.rules,
            case.request,
            agents[tenant],
            cause=case.cause,
            now=now,
            repeatable=True,
            replay_only=case.replay_only,
        )
        agents[tenant] = reserve_locally(agents[tenant], plan)
        plans.append(plan)
    results = await engine.store.route_many([(p.request.tenant, p.payload) for p in plans])
    announcing: list[_Announcing] = []
    for index, (plan, result) in enumerate(zip(plans, results, strict=True)):
        verdict = verdict_of(plan, result)
        if verdict is not None:
            routing, entry = announcement(plan, verdict)
            announcing.append(_Announcing(index, plan, verdict, routing, entry))
    out: list[list[Outgoing]] = [[] for _ in cases]
    applied = await _apply_statuses(engine, announcing)
    for item in announcing:
        update, events = applied[item.index]
        out[item.index] = await engine.announced(
            item.plan, item.verdict, item.routing, update, events
        )
    return out


async def _apply_statuses(
    engine: RoutingEngine, announcing: list[_Announcing]
) -> dict[int, tuple[CustomerUpdate, list[CaseEvent]]]:
    """Each announcement's status entry applied to its case, one round trip per round.

    A round takes at most one entry per customer, so every entry's events come with the
    context as it was right after that entry, as when applied one by one (a second new case of
    the same customer in one batch is rare: it takes a second round).
    """
    applied: dict[int, tuple[CustomerUpdate, list[CaseEvent]]] = {}
    pending = list(announcing)
    while pending:
        round_: dict[CustomerRef, _Announcing] = {}
        later: list[_Announcing] = []
        for item in pending:
            if item.ref in round_:
                later.append(item)
            else:
                round_[item.ref] = item
        updates = await engine.cases.apply({ref: [item.entry] for ref, item in round_.items()})
        for ref, item in round_.items():
            update = updates[ref]
            if update.folded_into:
                # Merged into another customer since the case opened: follow the fold.
                applied[item.index] = await apply_and_describe(
                    engine.cases, ref[0], ref[1], [dict(item.entry)]
                )
            else:
                applied[item.index] = (update, describe_update(ref[0], ref[1], update))
        pending = later
    return applied
