"""Routing decisions (pure): which rule, which queue, what priority, which agents, and why.

Everything here takes data and returns data, so a decision can be explained, tested and
replayed against other rules (``omnirouter rules explain`` and ``whatif``) without Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from omnirouter.events import CandidateAgent, Channel, RoutingReason
from omnirouter.pipeline.routing.rules import Queue, RoutingRules, Rule

Presence = Literal["available", "busy", "away", "offline"]


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """What routing knows about a case waiting for an agent."""

    case_id: str
    customer_id: str
    tenant: str
    channel: Channel
    opened_at: datetime
    language: str | None = None
    tier: str | None = None
    intents: tuple[str, ...] = ()
    repeat_contact: bool = False
    text: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    previous_agents: tuple[str, ...] = ()
    queue_id: str | None = None
    rule_id: str | None = None
    enqueued_at: datetime | None = None
    escalation_step: int = 0
    declined_by: tuple[str, ...] = ()
    sla_breached: bool = False


@dataclass(frozen=True, slots=True)
class AgentState:
    """An agent as routing sees them: presence, skills, languages, load and idle time."""

    agent_id: str
    presence: Presence = "offline"
    skills: dict[str, int] = field(default_factory=dict)
    languages: tuple[str, ...] = ()
    capacity: dict[str, int] = field(default_factory=dict)
    load: dict[str, int] = field(default_factory=dict)
    idle_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Requirements:
    """Who may take a case from this queue at this escalation step."""

    skills: dict[str, int]
    languages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision, with its reasons: what would happen, and to whom it may go."""

    queue: Queue
    rule: Rule | None
    priority: int
    is_open: bool
    opens_at: datetime | None
    requirements: Requirements
    candidates: tuple[CandidateAgent, ...]
    eligible: tuple[str, ...]
    sticky_agent: str | None
    sticky_until: datetime | None
    reasons: tuple[RoutingReason, ...]


def _reason(code: str, message: str, **data: str | int | float | bool | None) -> RoutingReason:
    return RoutingReason(code=code, message=message, data=data)


def rule_matches(rule: Rule, request: RoutingRequest) -> bool:
    """True when every condition of ``rule.when`` holds for the request."""
    when = rule.when
    if when.channels and request.channel not in when.channels:
        return False
    if when.intents and not set(when.intents) & set(request.intents):
        return False
    if when.tiers and (request.tier or "") not in when.tiers:
        return False
    if when.languages and (request.language or "") not in when.languages:
        return False
    if when.repeat_contact is not None and when.repeat_contact != request.repeat_contact:
        return False
    if when.text_regex and not re.search(when.text_regex, request.text, re.IGNORECASE):
        return False
    return all(request.attributes.get(k) == v for k, v in when.attributes.items())


def choose_queue(
    rules: RoutingRules, request: RoutingRequest
) -> tuple[Queue, Rule | None, list[RoutingReason]]:
    """The queue a case belongs in: where it already waits, else the first matching rule's."""
    if request.queue_id is not None:
        rule = next((r for r in rules.rules if r.id == request.rule_id), None)
        return (
            rules.queue(request.queue_id),
            rule,
            [_reason("queue_kept", f"waiting in queue {request.queue_id}", queue=request.queue_id)],
        )
    for rule in rules.rules:
        if rule_matches(rule, request):
            return (
                rules.queue(rule.route_to),
                rule,
                [
                    _reason(
                        "rule_matched",
                        f"rule {rule.id} matched: route to {rule.route_to}",
                        rule=rule.id,
                        queue=rule.route_to,
                    )
                ],
            )
    return (
        rules.queue(rules.default_queue),
        None,
        [
            _reason(
                "default_queue",
                f"no rule matched: default queue {rules.default_queue}",
                queue=rules.default_queue,
            )
        ],
    )


def case_priority(
    rules: RoutingRules, queue: Queue, rule: Rule | None, request: RoutingRequest, now: datetime
) -> tuple[int, list[RoutingReason]]:
    """Base priority plus the boosts that apply, each stated."""
    b = rules.boosts
    parts: list[tuple[str, int]] = [("queue base", queue.base_priority)]
    if rule is not None and rule.priority_boost:
        parts.append((f"rule {rule.id}", rule.priority_boost))
    if request.tier in b.vip_tiers:
        parts.append((f"tier {request.tier}", b.vip))
    if request.repeat_contact:
        parts.append(("repeat contact", b.repeat_contact))
    waited = (now - (request.enqueued_at or now)).total_seconds()
    if waited > 60 and b.per_minute_waiting:
        parts.append((f"waiting {int(waited // 60)} min", int(waited // 60 * b.per_minute_waiting)))
    if request.sla_breached or waited > queue.sla.first_response_s:
        parts.append(("SLA breached", b.over_sla))
    for index, step in enumerate(queue.escalation[: request.escalation_step]):
        if step.priority_boost:
            parts.append((f"escalation step {index + 1}", step.priority_boost))
    total = sum(v for _, v in parts)
    text = " + ".join(f"{v} ({name})" for name, v in parts)
    return total, [_reason("priority", f"priority {total} = {text}", priority=total)]


def requirements(queue: Queue, escalation_step: int) -> Requirements:
    """The skills and languages needed, relaxed by the escalation steps reached so far."""
    skills = dict(queue.skills)
    languages = queue.languages
    for step in queue.escalation[:escalation_step]:
        if step.widen is None:
            continue
        if step.widen.drop_skills:
            skills = {}
        elif step.widen.min_proficiency is not None:
            skills = {s: min(level, step.widen.min_proficiency) for s, level in skills.items()}
        if step.widen.any_language:
            languages = ()
    return Requirements(skills, languages)


def _why_not(
    agent: AgentState, req: Requirements, request: RoutingRequest, capacity: int
) -> str | None:
    if agent.presence != "available":
        return f"presence is {agent.presence}"
    if agent.agent_id in request.declined_by:
        return "already declined or let this offer expire"
    for skill, level in req.skills.items():
        have = agent.skills.get(skill, 0)
        if have < level:
            return f"skill {skill} {have} < {level} required"
    language = request.language
    if req.languages:
        if language and language in req.languages:
            if language not in agent.languages:
                return f"does not speak {language}"
        elif not set(req.languages) & set(agent.languages):
            return f"speaks none of {', '.join(req.languages)}"
    used = agent.load.get(str(request.channel), 0)
    if used >= capacity:
        return f"at capacity for {request.channel} ({used}/{capacity})"
    return None


def rank_agents(
    rules: RoutingRules,
    queue: Queue,
    req: Requirements,
    request: RoutingRequest,
    agents: list[AgentState],
    now: datetime,
) -> list[CandidateAgent]:
    """Every agent with a score or the reason they were filtered out; best first."""
    ranked: list[CandidateAgent] = []
    for agent in agents:
        capacity = rules.capacity_for(request.channel, agent.capacity)
        why = _why_not(agent, req, request, capacity)
        proficiency = sum(agent.skills.get(s, 0) for s in req.skills)
        if queue.distribution == "longest_idle":
            idle = (now - agent.idle_since).total_seconds() if agent.idle_since else 0.0
            score = round(idle + proficiency / 100, 3)
        else:
            spare = capacity - agent.load.get(str(request.channel), 0)
            score = round(spare / max(capacity, 1) + proficiency / 100, 4)
        ranked.append(
            CandidateAgent(
                agent_id=agent.agent_id,
                score=score if why is None else 0.0,
                eligible=why is None,
                filtered_because=why,
            )
        )
    ranked.sort(key=lambda c: (not c.eligible, -c.score, c.agent_id))
    return ranked


def _opening(queue: Queue, now: datetime) -> tuple[bool, datetime | None]:
    if queue.business_hours is None or queue.business_hours.is_open(now):
        return True, None
    return False, queue.business_hours.next_open(now)


def decide(
    rules: RoutingRules,
    request: RoutingRequest,
    agents: list[AgentState],
    now: datetime,
    *,
    sticky_until: datetime | None = None,
) -> Decision:
    """Decide where the case goes and who may take it, with the reasons for each step."""
    queue, rule, reasons = choose_queue(rules, request)
    is_open, opens_at = _opening(queue, now)
    visited = {queue.id}
    # A closed queue may overflow to another (and that one onwards); a cycle of closed queues
    # ends with the case waiting in the last queue reached, never in a loop.
    while (
        not is_open
        and queue.when_closed == "overflow"
        and queue.overflow_to not in (None, *visited)
    ):
        assert queue.overflow_to is not None  # narrowed by the loop condition
        assert opens_at is not None  # a closed queue always has a next opening
        reasons.append(
            _reason(
                "overflow",
                f"queue {queue.id} is closed until {opens_at.isoformat()}: "
                f"overflow to {queue.overflow_to}",
                queue=queue.overflow_to,
            )
        )
        queue = rules.queue(queue.overflow_to)
        visited.add(queue.id)
        is_open, opens_at = _opening(queue, now)
    if not is_open and opens_at is not None:
        reasons.append(
            _reason(
                "queue_closed",
                f"queue {queue.id} is closed until {opens_at.isoformat()}",
                opens_at=opens_at.isoformat(),
            )
        )
    priority, priority_reasons = case_priority(rules, queue, rule, request, now)
    reasons.extend(priority_reasons)
    req = requirements(queue, request.escalation_step)
    if request.escalation_step:
        reasons.append(
            _reason(
                "escalated",
                f"escalation step {request.escalation_step} applies",
                step=request.escalation_step,
            )
        )
    candidates = rank_agents(rules, queue, req, request, agents, now)
    sticky_agent = None
    if queue.sticky.enabled and request.previous_agents:
        until = sticky_until or (
            (request.enqueued_at or now) + timedelta(seconds=queue.sticky.wait_s)
        )
        if now < until:
            sticky_agent = request.previous_agents[0]
            sticky_until = until
            candidates = [
                c
                if c.agent_id == sticky_agent or not c.eligible
                else c.model_copy(
                    update={
                        "eligible": False,
                        "score": 0.0,
                        "filtered_because": f"sticky to {sticky_agent} until {until.isoformat()}",
                    }
                )
                for c in candidates
            ]
            candidates.sort(key=lambda c: (not c.eligible, -c.score, c.agent_id))
            reasons.append(
                _reason(
                    "sticky",
                    f"last agent {sticky_agent} first, until {until.isoformat()}",
                    agent=sticky_agent,
                    wait_s=queue.sticky.wait_s,
                )
            )
        else:
            reasons.append(_reason("sticky_expired", "sticky wait over: any eligible agent"))
    eligible = tuple(c.agent_id for c in candidates if c.eligible) if is_open else ()
    if not is_open:
        reasons.append(_reason("no_offer", "closed: the case waits in the queue"))
    elif eligible:
        reasons.append(
            _reason(
                "offer",
                f"offer to {eligible[0]} ({queue.distribution})",
                agent=eligible[0],
                timeout_s=queue.offer_timeout_s,
            )
        )
    else:
        reasons.append(_reason("no_agent", "no eligible agent now: the case waits in the queue"))
    return Decision(
        queue=queue,
        rule=rule,
        priority=priority,
        is_open=is_open,
        opens_at=opens_at,
        requirements=req,
        candidates=tuple(candidates),
        eligible=eligible,
        sticky_agent=sticky_agent,
        sticky_until=sticky_until,
        reasons=tuple(reasons),
    )
