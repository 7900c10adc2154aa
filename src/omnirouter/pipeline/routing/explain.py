"""Dry runs of routing rules: explain one event, and what-if over recorded traffic (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnirouter.events import CaseRouted, Channel, InteractionEvent
from omnirouter.pipeline.cases.intents import IntentRule, tag_intents
from omnirouter.pipeline.routing.decide import Decision, RoutingRequest, decide
from omnirouter.pipeline.routing.rules import RoutingRules


def request_for_event(
    event: InteractionEvent, intent_rules: tuple[IntentRule, ...]
) -> RoutingRequest:
    """The routing request a first message like ``event`` would make."""
    text = f"{event.content.subject or ''}\n{event.content.text}".strip()
    return RoutingRequest(
        case_id="case_explain.cus_explain",
        customer_id="cus_explain",
        tenant=event.tenant,
        channel=event.channel,
        opened_at=event.occurred_at,
        language=event.attributes.get("language") or event.content.language,
        tier=event.attributes.get("tier"),
        intents=tuple(t.tag for t in tag_intents(text, intent_rules)),
        repeat_contact=event.attributes.get("repeat_contact") == "true",
        text=event.content.text,
        attributes={k: v for k, v in event.attributes.items() if k not in {"language", "tier"}},
    )


def request_for_routed(routed: CaseRouted) -> RoutingRequest:
    """The routing request behind a recorded routed case (for what-if replays)."""
    case, context = routed.case, routed.context
    if case.effort is not None and case.effort.channels_used:
        channel = case.effort.channels_used[-1]
    elif case.channels:
        channel = case.channels[-1]
    else:
        channel = Channel.API
    last = next(
        (
            t.text
            for t in reversed(context.recent_timeline)
            if t.kind == "message" and t.case_id == case.case_id
        ),
        "",
    )
    return RoutingRequest(
        case_id=case.case_id,
        customer_id=case.customer_id,
        tenant=routed.tenant,
        channel=channel,
        opened_at=case.opened_at,
        language=context.profile.language,
        tier=context.profile.tier,
        intents=tuple(t.tag for t in case.intents),
        repeat_contact=context.repeat_contact,
        text=last,
        attributes=dict(context.profile.attributes),
        previous_agents=context.previous_agents,
    )


def explain(decision: Decision, request: RoutingRequest) -> dict[str, Any]:
    """A decision as plain data, for ``rules explain`` and the API."""
    queue = decision.queue
    return {
        "rule": decision.rule.id if decision.rule else None,
        "queue": queue.id,
        "open": decision.is_open,
        "opens_at": decision.opens_at.isoformat() if decision.opens_at else None,
        "priority": decision.priority,
        "requirements": {
            "skills": decision.requirements.skills,
            "languages": list(decision.requirements.languages),
        },
        "intents": list(request.intents),
        "distribution": queue.distribution,
        "sticky": {"enabled": queue.sticky.enabled, "wait_s": queue.sticky.wait_s},
        "escalation": [
            {
                "after_s": s.after_s,
                "move_to": s.move_to,
                "widen": s.widen.model_dump() if s.widen else None,
            }
            for s in queue.escalation
        ],
        "offer_timeout_s": queue.offer_timeout_s,
        "sla": queue.sla.model_dump(),
        "auto_ack": queue.auto_ack.enabled,
        "reasons": [r.message for r in decision.reasons],
    }


@dataclass
class WhatIfReport:
    """How routing would have differed under other rules."""

    cases: int = 0
    changed: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    rule_changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    closed_now: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def what_if(recorded: list[CaseRouted], rules: RoutingRules) -> WhatIfReport:
    """Replay recorded routed cases against ``rules`` at the time each was routed.

    Agents are taken out of the comparison (their presence then is not recorded here): what is
    compared is the rule, queue, priority and whether the queue was open.
    """
    report = WhatIfReport()
    seen: set[str] = set()
    for routed in recorded:
        # A case may have been routed several times (decline, escalation): its first decision
        # is the one rules decide.
        if routed.case.case_id in seen:
            continue
        seen.add(routed.case.case_id)
        request = request_for_routed(routed)
        at: datetime = routed.decision.occurred_at
        decision = decide(rules, request, [], at)
        before = routed.decision
        now_rule = decision.rule.id if decision.rule else "(default)"
        then_rule = before.rule_id or "(default)"
        report.cases += 1
        if not decision.is_open:
            report.closed_now += 1
        if (before.queue, then_rule, before.priority) != (
            decision.queue.id,
            now_rule,
            decision.priority,
        ):
            report.changed += 1
            report.moves[(before.queue or "-", decision.queue.id)] += 1
            report.rule_changes[(then_rule, now_rule)] += 1
            report.rows.append(
                {
                    "case_id": routed.case.case_id,
                    "then": {"rule": then_rule, "queue": before.queue, "priority": before.priority},
                    "would": {
                        "rule": now_rule,
                        "queue": decision.queue.id,
                        "priority": decision.priority,
                        "open": decision.is_open,
                    },
                }
            )
    return report
