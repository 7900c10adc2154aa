"""Routing decisions: which rule and queue, what priority, which agents may take it, and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnirouter.events import Channel
from omnirouter.pipeline.routing.decide import (
    AgentState,
    Decision,
    Requirements,
    RoutingRequest,
    decide,
    rank_agents,
    requirements,
)
from omnirouter.pipeline.routing.loader import parse_rules
from omnirouter.pipeline.routing.rules import Match, Queue, RoutingRules, Rule

T0 = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)  # a Monday, 12:00 in Berlin
SATURDAY = datetime(2024, 7, 6, 10, 0, tzinfo=UTC)
NEXT_MONDAY_OPENING = datetime(2024, 7, 8, 7, 0, tzinfo=UTC)  # 09:00 in Berlin

OFFICE_HOURS = """\
{timezone: Europe/Berlin, weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"],
 wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}}"""


def _rules(text: str) -> RoutingRules:
    return parse_rules(text, source="test")


def _request(**changes: Any) -> RoutingRequest:
    base = RoutingRequest(
        case_id="case_1",
        customer_id="cus_1",
        tenant="default",
        channel=Channel.EMAIL,
        opened_at=T0,
    )
    return replace(base, **changes)


def _agent(agent_id: str, presence: str = "available", **changes: Any) -> AgentState:
    return replace(AgentState(agent_id=agent_id, presence=presence), **changes)  # type: ignore[arg-type]


def _messages(decision: Decision) -> list[str]:
    return [r.message for r in decision.reasons]


def _codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def _why(decision: Decision) -> dict[str, str | None]:
    return {c.agent_id: c.filtered_because for c in decision.candidates}


# --- which queue ---------------------------------------------------------------------------

ORDERED = _rules("""
queues: [{id: vip}, {id: billing}, {id: general}]
rules:
  - {id: vip-first, when: {tiers: [vip]}, route_to: vip}
  - {id: billing, when: {intents: [billing]}, route_to: billing}
default_queue: general
""")


def test_first_matching_rule_wins() -> None:
    decision = decide(ORDERED, _request(tier="vip", intents=("billing",)), [], T0)
    assert decision.queue.id == "vip"
    assert decision.rule is not None and decision.rule.id == "vip-first"
    assert _messages(decision)[0] == "rule vip-first matched: route to vip"
    assert decision.reasons[0].data == {"rule": "vip-first", "queue": "vip"}


def test_a_later_rule_decides_when_earlier_ones_do_not_match() -> None:
    decision = decide(ORDERED, _request(intents=("billing",)), [], T0)
    assert (decision.queue.id, decision.rule.id if decision.rule else None) == (
        "billing",
        "billing",
    )


def test_default_queue_when_no_rule_matches() -> None:
    decision = decide(ORDERED, _request(intents=("delivery",)), [], T0)
    assert decision.queue.id == "general"
    assert decision.rule is None
    assert decision.reasons[0].code == "default_queue"
    assert _messages(decision)[0] == "no rule matched: default queue general"


def test_a_waiting_case_keeps_its_queue_and_rule_whatever_the_rules_say_now() -> None:
    waiting = _request(tier="vip", queue_id="billing", rule_id="billing", enqueued_at=T0)
    decision = decide(ORDERED, waiting, [], T0 + timedelta(seconds=30))
    assert decision.queue.id == "billing"
    assert decision.rule is not None and decision.rule.id == "billing"
    assert _messages(decision)[0] == "waiting in queue billing"
    assert decision.reasons[0].code == "queue_kept"


MATCHES = [
    pytest.param(
        {"channels": ["sms", "whatsapp"]},
        {"channel": Channel.WHATSAPP},
        [{"channel": Channel.EMAIL}],
        id="channels",
    ),
    pytest.param(
        {"intents": ["billing", "refund"]},
        {"intents": ("delivery", "refund")},
        [{"intents": ("delivery",)}, {"intents": ()}],
        id="intents-any-of",
    ),
    pytest.param(
        {"tiers": ["gold", "vip"]},
        {"tier": "gold"},
        [{"tier": "silver"}, {"tier": None}],
        id="tiers",
    ),
    pytest.param(
        {"languages": ["de"]},
        {"language": "de"},
        [{"language": "en"}, {"language": None}],
        id="languages",
    ),
    pytest.param(
        {"repeat_contact": True},
        {"repeat_contact": True},
        [{"repeat_contact": False}],
        id="repeat-contact-true",
    ),
    pytest.param(
        {"repeat_contact": False},
        {"repeat_contact": False},
        [{"repeat_contact": True}],
        id="repeat-contact-false",
    ),
    pytest.param(
        {"text_regex": r"\bcancel(led)?\b"},
        {"text": "Please CANCEL my order"},
        [{"text": "I want a refund"}, {"text": "my cancellation fee"}],
        id="text-regex-case-insensitive",
    ),
    pytest.param(
        {"attributes": {"plan": "enterprise"}},
        {"attributes": {"plan": "enterprise", "region": "eu"}},
        [{"attributes": {"plan": "pro"}}, {"attributes": {}}],
        id="attributes",
    ),
    pytest.param(
        {"channels": ["sms"], "tiers": ["gold"]},
        {"channel": Channel.SMS, "tier": "gold"},
        [{"channel": Channel.SMS, "tier": "silver"}, {"channel": Channel.EMAIL, "tier": "gold"}],
        id="all-conditions-must-hold",
    ),
    pytest.param({}, {}, [], id="empty-match-matches-every-case"),
]


@pytest.mark.parametrize(("when", "hit", "misses"), MATCHES)
def test_each_match_condition_decides_whether_the_rule_routes_the_case(
    when: dict[str, Any], hit: dict[str, Any], misses: list[dict[str, Any]]
) -> None:
    rules = RoutingRules(
        queues=(Queue(id="target"), Queue(id="general")),
        rules=(Rule(id="r", when=Match.model_validate(when), route_to="target"),),
        default_queue="general",
    )
    assert decide(rules, _request(**hit), [], T0).queue.id == "target"
    for miss in misses:
        assert decide(rules, _request(**miss), [], T0).queue.id == "general", miss


# --- priority ------------------------------------------------------------------------------

PRIORITY = _rules("""
queues:
  - id: billing
    base_priority: 10
    sla: {first_response_s: 3600}
    escalation:
      - {after_s: 60, priority_boost: 3}
      - {after_s: 120, priority_boost: 4}
      - {after_s: 180, widen: {drop_skills: true}}
      - {after_s: 240, priority_boost: 50}
  - id: general
rules:
  - {id: billing, when: {intents: [billing]}, route_to: billing, priority_boost: 5}
default_queue: general
boosts: {vip_tiers: [vip, gold], vip: 20, repeat_contact: 10, per_minute_waiting: 1, over_sla: 30}
""")


def test_new_case_priority_is_the_queue_base_alone() -> None:
    decision = decide(PRIORITY, _request(), [], T0)
    assert decision.priority == 0
    assert "priority 0 = 0 (queue base)" in _messages(decision)


def test_priority_adds_every_boost_that_applies_and_states_each() -> None:
    request = _request(
        intents=("billing",),
        tier="gold",
        repeat_contact=True,
        queue_id="billing",
        rule_id="billing",
        enqueued_at=T0,
        escalation_step=3,
    )
    decision = decide(PRIORITY, request, [], T0 + timedelta(minutes=12, seconds=30))

    assert decision.priority == 10 + 5 + 20 + 10 + 12 + 3 + 4
    (priority,) = [r for r in decision.reasons if r.code == "priority"]
    assert priority.message == (
        "priority 64 = 10 (queue base) + 5 (rule billing) + 20 (tier gold) + 10 (repeat contact)"
        " + 12 (waiting 12 min) + 3 (escalation step 1) + 4 (escalation step 2)"
    )
    assert priority.data == {"priority": 64}
    assert "escalation step 3 applies" in _messages(decision)


def test_waiting_counts_only_past_the_first_minute() -> None:
    request = _request(queue_id="general", enqueued_at=T0)
    assert decide(PRIORITY, request, [], T0 + timedelta(seconds=60)).priority == 0
    assert decide(PRIORITY, request, [], T0 + timedelta(seconds=61)).priority == 1


@pytest.mark.parametrize(
    ("changes", "waited", "expected"),
    [
        pytest.param(
            {"sla_breached": True},
            timedelta(0),
            "priority 30 = 0 (queue base) + 30 (SLA breached)",
            id="flagged-breached",
        ),
        pytest.param(
            {},
            timedelta(hours=1, seconds=1),
            "priority 90 = 0 (queue base) + 60 (waiting 60 min) + 30 (SLA breached)",
            id="waited-past-first-response",
        ),
        pytest.param(
            {},
            timedelta(hours=1),
            "priority 60 = 0 (queue base) + 60 (waiting 60 min)",
            id="waited-exactly-first-response",
        ),
    ],
)
def test_sla_breach_adds_its_boost(
    changes: dict[str, Any], waited: timedelta, expected: str
) -> None:
    request = _request(queue_id="general", enqueued_at=T0, **changes)
    decision = decide(PRIORITY, request, [], T0 + waited)
    assert expected in _messages(decision)


# --- requirements relaxed by escalation ----------------------------------------------------

WIDENING = Queue.model_validate(
    {
        "id": "billing",
        "skills": {"billing": 4, "refunds": 2},
        "languages": ["de", "fr"],
        "escalation": [
            {"after_s": 60, "widen": {"min_proficiency": 3}},
            {"after_s": 120, "move_to": None, "priority_boost": 5},
            {"after_s": 180, "widen": {"any_language": True}},
            {"after_s": 240, "widen": {"drop_skills": True}},
        ],
    }
)


@pytest.mark.parametrize(
    ("step", "skills", "languages"),
    [
        (0, {"billing": 4, "refunds": 2}, ("de", "fr")),
        (1, {"billing": 3, "refunds": 2}, ("de", "fr")),
        (2, {"billing": 3, "refunds": 2}, ("de", "fr")),
        (3, {"billing": 3, "refunds": 2}, ()),
        (4, {}, ()),
    ],
)
def test_escalation_steps_reached_relax_skills_and_languages(
    step: int, skills: dict[str, int], languages: tuple[str, ...]
) -> None:
    assert requirements(WIDENING, step) == Requirements(skills, languages)


def test_widened_requirements_let_more_agents_take_the_case() -> None:
    rules = RoutingRules(queues=(WIDENING,), default_queue="billing")
    agent = _agent("ana", skills={"billing": 3, "refunds": 2}, languages=("en",))
    request = _request(language="de", queue_id="billing", enqueued_at=T0)

    strict = decide(rules, request, [agent], T0)
    assert _why(strict) == {"ana": "skill billing 3 < 4 required"}
    at_step_1 = decide(rules, replace(request, escalation_step=1), [agent], T0)
    assert _why(at_step_1) == {"ana": "does not speak de"}
    at_step_3 = decide(rules, replace(request, escalation_step=3), [agent], T0)
    assert at_step_3.eligible == ("ana",)


# --- who may take it -----------------------------------------------------------------------

SUPPORT = _rules("""
capacity: {email: 2, sms: 5}
queues:
  - id: billing
    skills: {billing: 3}
    languages: [en, es]
default_queue: billing
""")


def _billing_agent(agent_id: str, presence: str = "available", **changes: Any) -> AgentState:
    defaults: dict[str, Any] = {"skills": {"billing": 3}, "languages": ("en", "es")}
    return _agent(agent_id, presence, **{**defaults, **changes})


@pytest.mark.parametrize("presence", ["busy", "away", "offline"])
def test_only_available_agents_are_eligible(presence: str) -> None:
    decision = decide(SUPPORT, _request(), [_billing_agent("ana", presence)], T0)
    assert decision.eligible == ()
    assert _why(decision) == {"ana": f"presence is {presence}"}
    assert decision.reasons[-1].code == "no_agent"


def test_an_agent_who_declined_is_not_offered_the_case_again() -> None:
    agents = [_billing_agent("ana"), _billing_agent("ben")]
    decision = decide(SUPPORT, _request(declined_by=("ana",)), agents, T0)
    assert decision.eligible == ("ben",)
    assert _why(decision)["ana"] == "already declined or let this offer expire"


def test_skill_below_the_required_level_filters_the_agent() -> None:
    agents = [
        _billing_agent("ana", skills={"billing": 2}),
        _billing_agent("ben", skills={}),
        _billing_agent("cyd", skills={"billing": 5}),
    ]
    decision = decide(SUPPORT, _request(), agents, T0)
    assert decision.eligible == ("cyd",)
    assert _why(decision) == {
        "cyd": None,
        "ana": "skill billing 2 < 3 required",
        "ben": "skill billing 0 < 3 required",
    }


@pytest.mark.parametrize(
    ("language", "eligible", "why"),
    [
        # A case in one of the queue's languages needs an agent who speaks exactly it.
        pytest.param("es", ("dora",), {"ana": "does not speak es"}, id="case-language-served"),
        # Otherwise any of the queue's languages will do.
        pytest.param("fr", ("ana", "dora"), {}, id="case-language-not-served"),
        pytest.param(None, ("ana", "dora"), {}, id="no-case-language"),
    ],
)
def test_language_rules_pick_who_may_take_the_case(
    language: str | None, eligible: tuple[str, ...], why: dict[str, str]
) -> None:
    agents = [
        _billing_agent("ana", languages=("en",)),
        _billing_agent("dora", languages=("es",)),
        _billing_agent("gus", languages=("de",)),
    ]
    decision = decide(SUPPORT, _request(language=language), agents, T0)
    assert decision.eligible == eligible
    assert _why(decision) == {
        **dict.fromkeys(eligible),
        **why,
        "gus": "does not speak es" if language == "es" else "speaks none of en, es",
    }


def test_queue_without_languages_takes_any_agent() -> None:
    rules = _rules("queues: [{id: general}]\ndefault_queue: general\n")
    decision = decide(rules, _request(language="fi"), [_agent("ana", languages=("en",))], T0)
    assert decision.eligible == ("ana",)


def test_capacity_is_per_channel_and_an_agent_override_beats_the_rules() -> None:
    agents = [
        _billing_agent("ana", load={"email": 2}),
        _billing_agent("ben", load={"email": 2}, capacity={"email": 3}),
        _billing_agent("cyd", load={"sms": 5}),
        _billing_agent("dan", load={"email": 1}, capacity={"email": 1}),
    ]
    decision = decide(SUPPORT, _request(channel=Channel.EMAIL), agents, T0)
    assert set(decision.eligible) == {"ben", "cyd"}
    assert _why(decision)["ana"] == "at capacity for email (2/2)"
    assert _why(decision)["dan"] == "at capacity for email (1/1)"

    sms = decide(SUPPORT, _request(channel=Channel.SMS), agents, T0)
    assert set(sms.eligible) == {"ana", "ben", "dan"}
    assert _why(sms)["cyd"] == "at capacity for sms (5/5)"


def test_most_spare_capacity_offers_the_least_loaded_agent_first() -> None:
    rules = _rules("""
capacity: {email: 4}
queues: [{id: general, skills: {billing: 1}}]
default_queue: general
""")
    agents = [
        _agent("ana", load={"email": 3}, skills={"billing": 1}),
        _agent("ben", load={}, skills={"billing": 1}),
        _agent("cyd", load={"email": 1}, skills={"billing": 5}),
        _agent("dan", load={"email": 1}, skills={"billing": 1}),
    ]
    decision = decide(rules, _request(), agents, T0)

    # Spare share of capacity first, proficiency (sum of required skills / 100) next.
    assert [(c.agent_id, c.score) for c in decision.candidates] == [
        ("ben", 1.01),
        ("cyd", 0.8),
        ("dan", 0.76),
        ("ana", 0.26),
    ]
    assert decision.eligible == ("ben", "cyd", "dan", "ana")
    assert _messages(decision)[-1] == "offer to ben (most_spare_capacity)"
    assert decision.reasons[-1].data == {"agent": "ben", "timeout_s": 30}


def test_longest_idle_offers_the_agent_idle_longest_first() -> None:
    rules = _rules("queues: [{id: general, distribution: longest_idle}]\ndefault_queue: general\n")
    agents = [
        _agent("ana", idle_since=T0 - timedelta(minutes=10), load={"email": 0}),
        _agent("ben", idle_since=T0 - timedelta(minutes=1)),
        _agent("cyd", idle_since=T0 - timedelta(minutes=30), load={"email": 4}),
        _agent("dan"),  # never idle: scores 0
    ]
    decision = decide(rules, _request(), agents, T0)
    assert [(c.agent_id, c.score) for c in decision.candidates] == [
        ("cyd", 1800.0),
        ("ana", 600.0),
        ("ben", 60.0),
        ("dan", 0.0),
    ]
    assert _messages(decision)[-1] == "offer to cyd (longest_idle)"


def test_ties_are_broken_by_agent_id_and_filtered_agents_come_last() -> None:
    agents = [
        _billing_agent("zoe"),
        _billing_agent("amy"),
        _billing_agent("bob", "busy"),
        _billing_agent("abe", "away"),
        _billing_agent("max"),
    ]
    queue = SUPPORT.queue("billing")
    ranked = rank_agents(SUPPORT, queue, requirements(queue, 0), _request(), agents, T0)
    assert [(c.agent_id, c.eligible) for c in ranked] == [
        ("amy", True),
        ("max", True),
        ("zoe", True),
        ("abe", False),
        ("bob", False),
    ]
    assert [c.score for c in ranked[3:]] == [0.0, 0.0]


# --- sticky --------------------------------------------------------------------------------

STICKY = _rules("""
queues: [{id: general, sticky: {enabled: true, wait_s: 60}}]
default_queue: general
""")
RETURNING = _request(previous_agents=("kim", "lou"), enqueued_at=T0)


def test_before_sticky_until_only_the_previous_agent_is_eligible() -> None:
    agents = [_agent("kim", load={"email": 4}), _agent("lou"), _agent("max", "away")]
    decision = decide(STICKY, RETURNING, agents, T0 + timedelta(seconds=30))

    until = T0 + timedelta(seconds=60)
    assert decision.eligible == ("kim",)
    assert decision.sticky_agent == "kim"
    assert decision.sticky_until == until
    assert _why(decision) == {
        "kim": None,
        "lou": "sticky to kim until 2024-07-01T10:01:00+00:00",
        "max": "presence is away",
    }
    assert "last agent kim first, until 2024-07-01T10:01:00+00:00" in _messages(decision)


def test_sticky_to_an_unavailable_agent_leaves_the_case_waiting() -> None:
    decision = decide(STICKY, RETURNING, [_agent("kim", "busy"), _agent("lou")], T0)
    assert decision.eligible == ()
    assert _why(decision)["kim"] == "presence is busy"
    assert _why(decision)["lou"].startswith("sticky to kim until")
    assert decision.reasons[-1].code == "no_agent"


def test_after_sticky_until_every_eligible_agent_may_take_the_case() -> None:
    agents = [_agent("kim", load={"email": 4}), _agent("lou")]
    decision = decide(STICKY, RETURNING, agents, T0 + timedelta(seconds=60))
    assert decision.eligible == ("lou", "kim")
    assert decision.sticky_agent is None
    assert "sticky wait over: any eligible agent" in _messages(decision)


def test_a_given_sticky_until_replaces_the_queue_wait() -> None:
    until = T0 + timedelta(minutes=5)
    decision = decide(
        STICKY,
        RETURNING,
        [_agent("kim"), _agent("lou")],
        T0 + timedelta(minutes=2),
        sticky_until=until,
    )
    assert decision.eligible == ("kim",)
    assert decision.sticky_until == until


def test_sticky_disabled_ignores_the_previous_agent() -> None:
    rules = _rules("queues: [{id: general}]\ndefault_queue: general\n")
    agents = [_agent("kim", load={"email": 4}), _agent("lou")]
    decision = decide(rules, RETURNING, agents, T0)
    assert decision.eligible == ("lou", "kim")
    assert decision.sticky_agent is None
    assert "sticky" not in " ".join(_codes(decision))


# --- business hours ------------------------------------------------------------------------

CLOSING = _rules(f"""
queues:
  - id: office
    business_hours: {OFFICE_HOURS}
  - id: day
    business_hours: {OFFICE_HOURS}
    when_closed: overflow
    overflow_to: night
  - id: night
    base_priority: 5
rules:
  - {{id: urgent, when: {{intents: [urgent]}}, route_to: day, priority_boost: 7}}
default_queue: office
""")


def test_closed_queue_has_no_eligible_agents_and_says_when_it_opens() -> None:
    decision = decide(CLOSING, _request(), [_agent("ana")], SATURDAY)
    assert decision.queue.id == "office"
    assert decision.is_open is False
    assert decision.eligible == ()
    assert decision.opens_at == NEXT_MONDAY_OPENING
    assert _messages(decision)[1:] == [
        "queue office is closed until 2024-07-08T07:00:00+00:00",
        "priority 0 = 0 (queue base)",
        "closed: the case waits in the queue",
    ]


def test_open_queue_has_no_opening_time() -> None:
    decision = decide(CLOSING, _request(), [_agent("ana")], T0)
    assert (decision.is_open, decision.opens_at, decision.eligible) == (True, None, ("ana",))


def test_closed_queue_with_overflow_routes_to_the_overflow_queue() -> None:
    decision = decide(CLOSING, _request(intents=("urgent",)), [_agent("ana")], SATURDAY)
    assert decision.queue.id == "night"
    assert decision.is_open is True
    assert decision.opens_at is None
    assert decision.eligible == ("ana",)


def test_open_queue_with_overflow_keeps_the_case() -> None:
    decision = decide(CLOSING, _request(intents=("urgent",)), [_agent("ana")], T0)
    assert decision.queue.id == "day"
    assert decision.priority == 7


def test_overflow_decision_states_the_overflow_reason() -> None:
    decision = decide(CLOSING, _request(intents=("urgent",)), [_agent("ana")], SATURDAY)
    assert "overflow" in _codes(decision)
    assert "queue day is closed until 2024-07-08T07:00:00+00:00: overflow to night" in _messages(
        decision
    )
    assert _messages(decision)[0] == "rule urgent matched: route to day"


def test_overflow_keeps_the_matched_rule_and_its_boost() -> None:
    decision = decide(CLOSING, _request(intents=("urgent",)), [_agent("ana")], SATURDAY)
    assert decision.rule is not None and decision.rule.id == "urgent"
    assert decision.priority == 5 + 7


def test_overflow_cycle_between_closed_queues_ends_with_the_case_waiting() -> None:
    rules = _rules(f"""
queues:
  - id: day
    business_hours: {OFFICE_HOURS}
    when_closed: overflow
    overflow_to: backup
  - id: backup
    business_hours: {OFFICE_HOURS}
    when_closed: overflow
    overflow_to: day
default_queue: day
""")
    decision = decide(rules, _request(), [_agent("ana")], SATURDAY)
    assert decision.is_open is False
    assert decision.eligible == ()
