"""The wait a customer is told, and dry runs of rules: explain one event, what-if over traffic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from omnirouter.events import (
    CaseContext,
    CaseRouted,
    CaseSnapshot,
    CaseStatus,
    Channel,
    Content,
    CustomerProfile,
    Direction,
    IntentTag,
    InteractionEvent,
    ProviderRefs,
    RoutingDecision,
    RoutingOutcome,
    TimelineEntry,
    TimelineEntryKind,
)
from omnirouter.pipeline.cases.intents import DEFAULT_INTENT_RULES, IntentRule
from omnirouter.pipeline.routing.decide import AgentState, decide
from omnirouter.pipeline.routing.estimate import describe_wait, estimate_wait_s
from omnirouter.pipeline.routing.explain import explain, request_for_event, what_if
from omnirouter.pipeline.routing.loader import parse_rules
from support.events import identifier

T0 = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)  # a Monday, 12:00 in Berlin
SATURDAY = datetime(2024, 7, 6, 10, 0, tzinfo=UTC)

# --- estimate_wait_s -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serving_slots", "avg_handle_s"),
    [(0, 120.0), (-1, 120.0), (3, None), (0, None)],
    ids=["nobody-online", "negative-slots", "no-history", "neither"],
)
def test_wait_is_the_sla_without_serving_slots_or_history(
    serving_slots: int, avg_handle_s: float | None
) -> None:
    wait = estimate_wait_s(
        position=50,
        serving_slots=serving_slots,
        avg_handle_s=avg_handle_s,
        sla_first_response_s=900,
    )
    assert wait == 900.0


@pytest.mark.parametrize(
    ("position", "serving_slots", "expected"),
    [
        (1, 3, 120.0),
        (3, 3, 120.0),
        (4, 3, 240.0),
        (7, 3, 360.0),
        (0, 3, 120.0),  # a position below one still waits one round
        (5, 1, 600.0),
    ],
)
def test_wait_is_rounds_of_serving_slots_times_the_average_handle_time(
    position: int, serving_slots: int, expected: float
) -> None:
    wait = estimate_wait_s(
        position=position,
        serving_slots=serving_slots,
        avg_handle_s=120.0,
        sla_first_response_s=3600,
    )
    assert wait == expected


@pytest.mark.parametrize(
    ("position", "expected"),
    [(5, 3000.0), (6, 3600.0), (7, 3600.0), (100, 3600.0)],
)
def test_wait_is_capped_at_four_times_the_sla(position: int, expected: float) -> None:
    wait = estimate_wait_s(
        position=position, serving_slots=1, avg_handle_s=600.0, sla_first_response_s=900
    )
    assert wait == expected


@pytest.mark.parametrize(
    ("position", "serving_slots", "avg_handle_s", "opens_in_s", "expected"),
    [
        (4, 2, 300.0, 1800.0, 1800.0 + 600.0),
        (4, 0, None, 1800.0, 1800.0 + 900.0),
        (100, 1, 600.0, 7200.0, 7200.0 + 3600.0),  # the cap applies to the queue part only
        (4, 2, 300.0, -60.0, 600.0),  # an opening in the past adds nothing
    ],
)
def test_a_closed_queue_adds_the_time_until_it_opens(
    position: int,
    serving_slots: int,
    avg_handle_s: float | None,
    opens_in_s: float,
    expected: float,
) -> None:
    wait = estimate_wait_s(
        position=position,
        serving_slots=serving_slots,
        avg_handle_s=avg_handle_s,
        sla_first_response_s=900,
        opens_in_s=opens_in_s,
    )
    assert wait == expected


# --- describe_wait -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "a few minutes"),
        (179.9, "a few minutes"),
        (180, "about 5 minutes"),  # 3 minutes rounds down to 5, never "about 0 minutes"
        (449, "about 5 minutes"),
        (451, "about 10 minutes"),
        (20 * 60, "about 20 minutes"),
        (23 * 60, "about 25 minutes"),
        (54 * 60 + 59, "about 55 minutes"),
        (55 * 60, "about 1 hour"),
        (89 * 60, "about 1 hour"),
        (91 * 60, "about 2 hours"),
        (23 * 3600, "about 23 hours"),
        (23.5 * 3600, "about 1 day"),
        (35 * 3600, "about 1 day"),
        (37 * 3600, "about 2 days"),
        (3 * 86400, "about 3 days"),
    ],
)
def test_describe_wait_words_a_wait_as_a_customer_reads_it(seconds: float, text: str) -> None:
    assert describe_wait(seconds) == text


# --- request_for_event ---------------------------------------------------------------------


def _event(
    text: str = "hello",
    *,
    subject: str | None = None,
    language: str | None = None,
    attributes: dict[str, str] | None = None,
    channel: Channel = Channel.EMAIL,
) -> InteractionEvent:
    return InteractionEvent(
        tenant="acme",
        occurred_at=T0,
        received_at=T0,
        channel=channel,
        direction=Direction.INBOUND,
        identifiers=(identifier("email", "ana@example.com"),),
        content=Content(text=text, subject=subject, language=language),
        provider=ProviderRefs(provider="test"),
        attributes=attributes or {},
    )


def test_request_for_event_takes_language_tier_and_repeat_contact_from_attributes() -> None:
    event = _event(
        "I was charged twice",
        language="en",
        attributes={"language": "de", "tier": "gold", "repeat_contact": "true", "plan": "pro"},
        channel=Channel.SMS,
    )
    request = request_for_event(event, DEFAULT_INTENT_RULES)

    assert request.language == "de"
    assert request.tier == "gold"
    assert request.repeat_contact is True
    assert request.intents == ("billing",)
    assert request.attributes == {"repeat_contact": "true", "plan": "pro"}
    assert (request.tenant, request.channel, request.opened_at) == ("acme", Channel.SMS, T0)
    assert request.text == "I was charged twice"
    assert request.queue_id is None


@pytest.mark.parametrize(
    ("attributes", "content_language", "language"),
    [
        ({"language": "de"}, "en", "de"),
        ({}, "en", "en"),
        ({"language": ""}, "fr", "fr"),
        ({}, None, None),
    ],
    ids=["attribute-wins", "content-fallback", "empty-attribute-falls-back", "neither"],
)
def test_request_for_event_language_falls_back_to_the_content_language(
    attributes: dict[str, str], content_language: str | None, language: str | None
) -> None:
    event = _event(language=content_language, attributes=attributes)
    assert request_for_event(event, DEFAULT_INTENT_RULES).language == language


@pytest.mark.parametrize("flag", ["false", "True", "yes", "1"])
def test_only_the_attribute_true_marks_a_repeat_contact(flag: str) -> None:
    event = _event(attributes={"repeat_contact": flag})
    assert request_for_event(event, DEFAULT_INTENT_RULES).repeat_contact is False


def test_request_for_event_tags_intents_with_the_given_rules_from_subject_and_text() -> None:
    widgets = (
        IntentRule(rule_id="widgets", tag="widget", keywords=("widget",)),
        IntentRule(rule_id="refunds", tag="refund", keywords=("money back",)),
    )
    event = _event("I want my money back", subject="Broken widget")

    assert request_for_event(event, widgets).intents == ("widget", "refund")
    assert request_for_event(event, ()).intents == ()
    assert request_for_event(event, DEFAULT_INTENT_RULES).intents == ("refund",)


# --- explain -------------------------------------------------------------------------------

RULES = parse_rules(
    """
queues:
  - id: billing
    skills: {billing: 3}
    languages: [de, en]
    base_priority: 10
    escalation:
      - {after_s: 300, widen: {min_proficiency: 2}}
      - {after_s: 900, move_to: general}
  - id: general
  - id: weekday
    business_hours:
      timezone: Europe/Berlin
      weekly: {mon: ["09:00-17:00"], fri: ["09:00-17:00"]}
rules:
  - {id: billing, when: {intents: [billing]}, route_to: billing, priority_boost: 5}
  - {id: texts, when: {channels: [sms]}, route_to: weekday}
default_queue: general
""",
    source="test",
)


def test_explain_lays_out_a_decision_as_plain_data() -> None:
    request = request_for_event(
        _event("Question about my invoice", attributes={"language": "de"}), DEFAULT_INTENT_RULES
    )
    agents = [AgentState("ana", "available", skills={"billing": 4}, languages=("de",))]
    decision = decide(RULES, request, agents, T0)

    assert explain(decision, request) == {
        "rule": "billing",
        "queue": "billing",
        "open": True,
        "opens_at": None,
        "priority": 15,
        "requirements": {"skills": {"billing": 3}, "languages": ["de", "en"]},
        "intents": ["billing"],
        "distribution": "most_spare_capacity",
        "sticky": {"enabled": False, "wait_s": 60},
        "escalation": [
            {
                "after_s": 300,
                "move_to": None,
                "widen": {"drop_skills": False, "min_proficiency": 2, "any_language": False},
            },
            {"after_s": 900, "move_to": "general", "widen": None},
        ],
        "offer_timeout_s": 30,
        "sla": {"first_response_s": 3600, "next_response_s": 3600},
        "auto_ack": False,
        "reasons": [
            "rule billing matched: route to billing",
            "priority 15 = 10 (queue base) + 5 (rule billing)",
            "offer to ana (most_spare_capacity)",
        ],
    }


def test_explain_of_a_closed_queue_says_when_it_opens() -> None:
    request = request_for_event(_event("hi", channel=Channel.SMS), DEFAULT_INTENT_RULES)
    out = explain(decide(RULES, request, [], SATURDAY), request)

    assert (out["rule"], out["queue"], out["open"]) == ("texts", "weekday", False)
    assert out["opens_at"] == "2024-07-08T07:00:00+00:00"
    assert out["intents"] == []
    assert out["reasons"][-1] == "closed: the case waits in the queue"


def test_explain_of_the_default_queue_has_no_rule() -> None:
    request = request_for_event(_event("hello"), DEFAULT_INTENT_RULES)
    out = explain(decide(RULES, request, [], T0), request)
    assert (out["rule"], out["queue"], out["priority"]) == (None, "general", 0)
    assert out["reasons"] == [
        "no rule matched: default queue general",
        "priority 0 = 0 (queue base)",
        "no eligible agent now: the case waits in the queue",
    ]


# --- what_if -------------------------------------------------------------------------------


def _routed(
    case_id: str,
    *,
    queue: str,
    rule_id: str | None,
    priority: int,
    at: datetime = T0,
    intents: tuple[str, ...] = (),
    channel: Channel = Channel.EMAIL,
) -> CaseRouted:
    customer_id = f"cus_{case_id}"
    case = CaseSnapshot(
        case_id=case_id,
        customer_id=customer_id,
        status=CaseStatus.QUEUED,
        opened_at=at,
        updated_at=at,
        channels=(channel,),
        queue=queue,
        intents=tuple(IntentTag(tag=t, rule_id=t, evidence=t) for t in intents),
    )
    decision = RoutingDecision(
        occurred_at=at,
        received_at=at,
        case_id=case_id,
        customer_id=customer_id,
        queue=queue,
        strategy="most_spare_capacity",
        outcome=RoutingOutcome.QUEUED,
        rule_id=rule_id,
        priority=priority,
    )
    context = CaseContext(
        profile=CustomerProfile(customer_id=customer_id),
        recent_timeline=(
            TimelineEntry(
                entry_id=f"evt_{case_id}",
                at=at,
                kind=TimelineEntryKind.MESSAGE,
                case_id=case_id,
                text="hello",
            ),
        ),
    )
    return CaseRouted(occurred_at=at, received_at=at, case=case, decision=decision, context=context)


def test_what_if_counts_a_case_that_would_change_queue_and_rule() -> None:
    recorded = [_routed("case_a", queue="general", rule_id=None, priority=0, intents=("billing",))]
    report = what_if(recorded, RULES)

    assert (report.cases, report.changed, report.closed_now) == (1, 1, 0)
    assert report.moves == Counter({("general", "billing"): 1})
    assert report.rule_changes == Counter({("(default)", "billing"): 1})
    assert report.rows == [
        {
            "case_id": "case_a",
            "then": {"rule": "(default)", "queue": "general", "priority": 0},
            "would": {"rule": "billing", "queue": "billing", "priority": 15, "open": True},
        }
    ]


def test_what_if_counts_a_changed_priority_alone_as_a_change() -> None:
    recorded = [
        _routed("case_c", queue="billing", rule_id="billing", priority=12, intents=("billing",))
    ]
    report = what_if(recorded, RULES)
    assert (report.cases, report.changed) == (1, 1)
    assert report.moves == Counter({("billing", "billing"): 1})
    assert report.rows[0]["then"]["priority"] == 12
    assert report.rows[0]["would"]["priority"] == 15


def test_what_if_counts_a_changed_rule_alone_as_a_change() -> None:
    recorded = [_routed("case_r", queue="general", rule_id="old-catch-all", priority=0)]
    report = what_if(recorded, RULES)
    assert report.changed == 1
    assert report.rule_changes == Counter({("old-catch-all", "(default)"): 1})
    assert report.moves == Counter({("general", "general"): 1})


def test_what_if_leaves_out_a_case_routed_the_same_way() -> None:
    recorded = [
        _routed("case_b", queue="general", rule_id=None, priority=0),
        _routed("case_d", queue="billing", rule_id="billing", priority=15, intents=("billing",)),
    ]
    report = what_if(recorded, RULES)
    assert (report.cases, report.changed, report.closed_now) == (2, 0, 0)
    assert report.moves == Counter()
    assert report.rule_changes == Counter()
    assert report.rows == []


def test_what_if_judges_only_the_first_routing_of_a_case() -> None:
    first = _routed("case_a", queue="general", rule_id=None, priority=0)
    # Routed again later (after a decline, an escalation): not a second case, not a change.
    again = _routed(
        "case_a", queue="supervisors", rule_id="x", priority=99, at=T0 + timedelta(minutes=10)
    )
    report = what_if([first, again, again], RULES)
    assert (report.cases, report.changed) == (1, 0)


def test_what_if_counts_cases_that_would_meet_a_closed_queue() -> None:
    recorded = [
        _routed("case_s", queue="weekday", rule_id="texts", priority=0, channel=Channel.SMS),
        _routed(
            "case_w", queue="weekday", rule_id="texts", priority=0, channel=Channel.SMS, at=SATURDAY
        ),
    ]
    report = what_if(recorded, RULES)
    # Unchanged routing, but the Saturday case would wait for Monday's opening.
    assert (report.cases, report.changed, report.closed_now) == (2, 0, 1)


def test_what_if_row_says_a_moved_case_would_meet_a_closed_queue() -> None:
    recorded = [
        _routed(
            "case_m", queue="general", rule_id=None, priority=0, channel=Channel.SMS, at=SATURDAY
        )
    ]
    report = what_if(recorded, RULES)
    assert report.closed_now == 1
    assert report.rows[0]["would"] == {
        "rule": "texts",
        "queue": "weekday",
        "priority": 0,
        "open": False,
    }


def test_what_if_over_no_traffic_is_an_empty_report() -> None:
    report = what_if([], RULES)
    assert (report.cases, report.changed, report.closed_now, report.rows) == (0, 0, 0, [])


def test_what_if_with_the_rules_in_force_changes_nothing() -> None:
    today = parse_rules("queues: [{id: general}]\ndefault_queue: general\n", source="test")
    recorded = [
        _routed("case_1", queue="general", rule_id=None, priority=0, intents=("billing",)),
        _routed("case_2", queue="general", rule_id=None, priority=0, channel=Channel.SMS),
    ]
    assert what_if(recorded, today).changed == 0
