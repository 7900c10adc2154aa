"""One routing step as data (pure): the plan sent to route.lua, and what its answer means.

Split out of the engine so that routing one case and routing a whole batch of new cases (one
pipelined round trip, see ``batch``) build exactly the same payloads, reasons and events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from omnirouter.events import (
    CaseStatus,
    RoutingDecision,
    RoutingOutcome,
    RoutingReason,
    derived_event_id,
)
from omnirouter.pipeline.cases.entries import status_entry
from omnirouter.pipeline.routing.decide import AgentState, Decision, RoutingRequest, decide
from omnirouter.pipeline.routing.rules import Queue, RoutingRules
from omnirouter.pipeline.routing.store import capacities, millis, queue_score, request_to_json


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A decision for one case and the route.lua payload that makes it real."""

    request: RoutingRequest
    decision: Decision
    cause: str
    now: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What route.lua did with a plan, when there is something new to announce."""

    outcome: RoutingOutcome
    agent: str | None
    reasons: tuple[RoutingReason, ...]
    to: CaseStatus
    status_reason: str
    ack: bool


def derived_event_id_for(case_id: str) -> uuid.UUID:
    """A stable UUID namespace per case, for deterministic routing event ids."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"omnirouter:case:{case_id}")


def plan_route(
    rules: RoutingRules,
    request: RoutingRequest,
    agents: list[AgentState],
    *,
    cause: str,
    now: datetime,
    clear_timers: tuple[str, ...] = (),
    previous_queue: str | None = None,
    repeatable: bool = False,
    replay_only: bool = False,
) -> RoutePlan:
    """Decide where ``request`` goes given ``agents``, and build route.lua's payload."""
    previous_queue = previous_queue or request.queue_id
    decision = decide(rules, request, agents, now, sticky_until=None)
    queue = decision.queue
    enqueued_at = request.enqueued_at or now
    request = replace(
        request,
        queue_id=queue.id,
        rule_id=decision.rule.id if decision.rule else request.rule_id,
        enqueued_at=enqueued_at,
    )
    timers = route_timers(request, decision, now)
    ack_key = f"{request.case_id}|{millis(request.opened_at)}" if queue.auto_ack.enabled else ""
    payload = {
        "case_id": request.case_id,
        "cause": cause,
        "repeatable": repeatable or replay_only,
        "replay_only": replay_only,
        "channel": str(request.channel),
        "request": request_to_json(request).decode(),
        "candidates": list(decision.eligible),
        "capacities": capacities(agents, request.channel, rules.capacity),
        "offer_expires": millis(now + timedelta(seconds=queue.offer_timeout_s)),
        "queue": queue.id,
        "previous_queue": previous_queue or "",
        "score": queue_score(decision.priority, enqueued_at),
        "timers": [[kind, millis(due)] for kind, due in timers],
        "clear_timers": list(clear_timers),
        "ack_key": ack_key,
        "now": millis(now),
    }
    return RoutePlan(request, decision, cause, now, payload)


def reserve_locally(agents: list[AgentState], plan: RoutePlan) -> list[AgentState]:
    """``agents`` after route.lua reserves as it would with nothing else changing meanwhile.

    Lets a batch decide its next case as if the previous ones were already routed; the script
    still checks every reservation, so a guess that went stale only changes the reasons.
    """
    payload = plan.payload
    if payload["replay_only"]:
        return agents
    channel = payload["channel"]
    by_id = {a.agent_id: a for a in agents}
    for agent_id in payload["candidates"]:
        agent = by_id.get(agent_id)
        if agent is None:
            continue
        used = agent.load.get(channel, 0)
        if agent.presence == "available" and used < payload["capacities"].get(agent_id, 0):
            busier = replace(agent, load={**agent.load, channel: used + 1})
            return [busier if a.agent_id == agent_id else a for a in agents]
    return agents


def verdict_of(plan: RoutePlan, result: dict[str, Any]) -> Verdict | None:
    """The announcement route.lua's ``result`` calls for; None for a replay or a lost race."""
    state = result["state"]
    if result.get("already") or state == "assigned":
        return None  # a replay, or a race another worker won: nothing new to announce
    decision = plan.decision
    agent = result.get("agent") or None
    outcome = RoutingOutcome.OFFERED if state == "offered" else RoutingOutcome.QUEUED
    reasons = list(decision.reasons)
    if outcome is RoutingOutcome.OFFERED and agent != (
        decision.eligible[0] if decision.eligible else None
    ):
        reasons.append(
            RoutingReason(
                code="reserved_next",
                message=f"offered to {agent}: candidates before were taken meanwhile",
                data={"agent": agent},
            )
        )
    if outcome is RoutingOutcome.QUEUED and decision.eligible:
        reasons.append(
            RoutingReason(
                code="all_taken",
                message="every eligible agent was taken meanwhile: queued",
                data={},
            )
        )
    offered = outcome is RoutingOutcome.OFFERED
    return Verdict(
        outcome=outcome,
        agent=agent,
        reasons=tuple(reasons),
        to=CaseStatus.OFFERED if offered else CaseStatus.QUEUED,
        status_reason=f"offered to {agent}" if agent else f"queued in {decision.queue.id}",
        ack=outcome is RoutingOutcome.QUEUED and bool(result.get("ack")),
    )


def announcement(plan: RoutePlan, verdict: Verdict) -> tuple[RoutingDecision, dict[str, Any]]:
    """The routing decision to publish and the case status entry that goes with it."""
    request, decision = plan.request, plan.decision
    event_id = derived_event_id(derived_event_id_for(request.case_id), f"routing:{plan.cause}")
    routing = RoutingDecision(
        event_id=event_id,
        tenant=request.tenant,
        occurred_at=plan.now,
        case_id=request.case_id,
        customer_id=request.customer_id,
        queue=decision.queue.id,
        strategy=strategy(decision.queue, decision),
        outcome=verdict.outcome,
        agent_id=verdict.agent,
        rule_id=decision.rule.id if decision.rule else None,
        priority=decision.priority,
        candidates=decision.candidates,
        reasons=verdict.reasons,
    )
    entry = status_entry(
        event_id,
        plan.now,
        case_id=request.case_id,
        to=verdict.to,
        reason=verdict.status_reason,
        queue=decision.queue.id,
    )
    return routing, entry


def route_timers(
    request: RoutingRequest, decision: Decision, now: datetime
) -> list[tuple[str, datetime]]:
    """The timers a waiting case gets: escalation, sticky wait, SLA and queue opening."""
    queue = decision.queue
    enqueued = request.enqueued_at or now
    timers: list[tuple[str, datetime]] = []
    if request.escalation_step < len(queue.escalation):
        step = queue.escalation[request.escalation_step]
        timers.append(("escalate", enqueued + timedelta(seconds=step.after_s)))
    if decision.sticky_until is not None:
        timers.append(("sticky", decision.sticky_until))
    if not request.sla_breached:
        timers.append(("sla", enqueued + timedelta(seconds=queue.sla.first_response_s)))
    if decision.opens_at is not None:
        timers.append(("open", decision.opens_at))
    return timers


def strategy(queue: Queue, decision: Decision) -> str:
    """How the case was matched, e.g. ``sticky+skills+longest_idle``."""
    parts = ["skills" if decision.requirements.skills else "any_skill", queue.distribution]
    if decision.sticky_agent:
        parts.insert(0, "sticky")
    return "+".join(parts)
