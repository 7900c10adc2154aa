"""Case entries built from events, and the case snapshots, context and case events built back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from omnirouter.events import (
    Attachment,
    CaseContext,
    CaseEventKind,
    CaseStatus,
    Channel,
    Content,
    CustomerProfile,
    Direction,
    Identifier,
    IdentifierKind,
    IntentTag,
    InteractionEvent,
    ProviderRefs,
    ResolvedInteraction,
    StatusChange,
    TimelineEntryKind,
)
from omnirouter.pipeline.cases.entries import (
    TIMELINE_TEXT_CHARS,
    customer_of_case,
    inbound_entry,
    new_case_id,
    outbound_entry,
    status_entry,
)
from omnirouter.pipeline.cases.intents import DEFAULT_INTENT_RULES
from omnirouter.pipeline.cases.snapshot import (
    _TimelineCache,
    case_context,
    case_events,
    case_snapshot,
)
from omnirouter.pipeline.cases.store import EntryOutcome
from support.events import identifier, inbound

T0_MS = 1_700_000_000_000
T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
AT = datetime(2024, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC)
AT_MS = 1_709_294_400_123

# --- case ids ------------------------------------------------------------------------------


def test_new_case_id_is_the_same_for_the_same_event_and_customer() -> None:
    event_id = uuid.uuid4()
    assert new_case_id(event_id, "cus_1") == new_case_id(event_id, "cus_1")
    assert new_case_id(event_id, "cus_1").startswith("case_")


def test_new_case_id_differs_per_event_and_per_customer() -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    assert new_case_id(one, "cus_1") != new_case_id(two, "cus_1")
    assert new_case_id(one, "cus_1") != new_case_id(one, "cus_2")


@pytest.mark.parametrize("customer_id", ["cus_1", "cus_8f3a", "cus.with.dots", "x"])
def test_customer_of_a_new_case_is_the_customer_it_was_opened_for(customer_id: str) -> None:
    assert customer_of_case(new_case_id(uuid.uuid4(), customer_id)) == customer_id


@pytest.mark.parametrize("case_id", ["not-a-case", "case_x.", "cus_1.case_x", "", "case_abc"])
def test_customer_of_case_rejects_what_is_not_a_case_id(case_id: str) -> None:
    assert customer_of_case(case_id) is None


# --- inbound entries -----------------------------------------------------------------------


def _email(
    *,
    text: str = "Hi Ana,\nMy parcel never arrived.\n-- \nAna",
    subject: str | None = "Order 123",
    in_reply_to: str | None = "<m3@example.com>",
    references: tuple[str, ...] = ("<m1@example.com>", "<m2@example.com>"),
    attributes: dict[str, str] | None = None,
    language: str | None = None,
    display_name: str | None = "Ana Silva",
) -> InteractionEvent:
    return InteractionEvent(
        occurred_at=AT,
        channel=Channel.EMAIL,
        direction=Direction.INBOUND,
        identifiers=(identifier("email", " Ana@Example.com "),),
        display_name=display_name,
        content=Content(
            text=text,
            subject=subject,
            language=language,
            attachments=(Attachment(filename="a.png", content_type="image/png", size_bytes=3),),
        ),
        provider=ProviderRefs(
            provider="smtp",
            message_id="<m4@example.com>",
            in_reply_to=in_reply_to,
            references=references,
        ),
        attributes=attributes if attributes is not None else {},
    )


def _resolved(event: InteractionEvent, customer_id: str = "cus_1") -> ResolvedInteraction:
    return ResolvedInteraction(
        occurred_at=event.occurred_at,
        causation_id=event.event_id,
        customer_id=customer_id,
        interaction=event,
        is_new_customer=False,
        identifiers=(
            Identifier(kind=IdentifierKind.EMAIL, value="ana@example.com"),
            Identifier(kind=IdentifierKind.SOCIAL_HANDLE, value="ana_b", provider="twitter"),
        ),
    )


def test_inbound_entry_describes_the_message_for_the_case_script() -> None:
    event = _email(attributes={"language": "pt", "tier": "gold", "plan": "pro"})
    entry = inbound_entry(_resolved(event), DEFAULT_INTENT_RULES)
    assert entry == {
        "type": "inbound",
        "event_id": str(event.event_id),
        "at": AT_MS,
        "channel": "email",
        "kind": "message",
        "text": "Hi Ana,\nMy parcel never arrived.\n-- \nAna",
        "subject": "Order 123",
        "attachments": 1,
        "message_id": "<m4@example.com>",
        "refs": ["<m3@example.com>", "<m2@example.com>", "<m1@example.com>"],
        "case_new": new_case_id(event.event_id, "cus_1"),
        "fragment": "My parcel never arrived.",
        "intents": [{"tag": "delivery", "rule_id": "delivery", "evidence": "parcel"}],
        "profile": {
            "name": "Ana Silva",
            "language": "pt",
            "tier": "gold",
            "attributes": {"plan": "pro"},
        },
        "identifiers": ["email:ana@example.com", "social_handle:twitter:ana_b"],
    }
    assert orjson.loads(orjson.dumps(entry)) == entry


@pytest.mark.parametrize(
    ("in_reply_to", "references", "refs"),
    [
        ("<c>", ("<a>", "<b>"), ["<c>", "<b>", "<a>"]),
        (None, ("<a>", "<b>"), ["<b>", "<a>"]),
        ("<c>", (), ["<c>"]),
        (None, (), []),
        ("", ("", "<a>"), ["<a>"]),
    ],
)
def test_inbound_entry_refs_are_in_reply_to_then_references_newest_first(
    in_reply_to: str | None, references: tuple[str, ...], refs: list[str]
) -> None:
    event = _email(in_reply_to=in_reply_to, references=references)
    assert inbound_entry(_resolved(event), DEFAULT_INTENT_RULES)["refs"] == refs


def test_inbound_entry_cuts_long_text_but_tags_and_tells_the_story_from_all_of_it() -> None:
    text = "x " * TIMELINE_TEXT_CHARS + "where is my refund"
    entry = inbound_entry(_resolved(_email(text=text, subject=None)), DEFAULT_INTENT_RULES)
    assert entry["text"] == text[:TIMELINE_TEXT_CHARS]
    assert entry["subject"] == ""
    assert [i["tag"] for i in entry["intents"]] == ["refund"]
    assert entry["fragment"].endswith("…")


def test_inbound_entry_tags_intents_shown_only_in_the_subject() -> None:
    entry = inbound_entry(
        _resolved(_email(text="See above.", subject="Cancel my subscription")),
        DEFAULT_INTENT_RULES,
    )
    assert entry["intents"] == [{"tag": "cancellation", "rule_id": "cancel", "evidence": "Cancel"}]


@pytest.mark.parametrize(
    ("attributes", "content_language", "language"),
    [
        ({"language": "pt"}, "en", "pt"),
        ({}, "en", "en"),
        ({}, None, ""),
    ],
)
def test_inbound_entry_language_comes_from_attributes_then_content(
    attributes: dict[str, str], content_language: str | None, language: str
) -> None:
    event = _email(attributes=attributes, language=content_language)
    assert inbound_entry(_resolved(event), ())["profile"]["language"] == language


def test_inbound_entry_without_profile_hints_has_empty_profile_fields() -> None:
    event = inbound("sms", identifier("phone", "+15550102345"), text="hello", at=AT)
    entry = inbound_entry(_resolved(event), DEFAULT_INTENT_RULES)
    assert entry["profile"] == {"name": "", "language": "", "tier": "", "attributes": {}}
    assert entry["subject"] == ""
    assert entry["message_id"] == ""
    assert entry["refs"] == []
    assert entry["intents"] == []
    assert entry["attachments"] == 0


def test_inbound_entry_identifiers_are_the_resolved_ones_not_the_raw_ones() -> None:
    entry = inbound_entry(_resolved(_email()), ())
    assert "email: Ana@Example.com " not in entry["identifiers"]
    assert entry["identifiers"][0] == "email:ana@example.com"


def test_inbound_entry_is_the_same_on_replay() -> None:
    resolved = _resolved(_email())
    assert inbound_entry(resolved, DEFAULT_INTENT_RULES) == inbound_entry(
        resolved, DEFAULT_INTENT_RULES
    )


# --- outbound and status entries -----------------------------------------------------------


def _reply(*, agent_id: str | None, case_id: str | None) -> InteractionEvent:
    return InteractionEvent(
        occurred_at=AT,
        channel=Channel.SMS,
        direction=Direction.OUTBOUND,
        customer_id="cus_1",
        agent_id=agent_id,
        case_id=case_id,
        content=Content(text="We are on it."),
        provider=ProviderRefs(provider="twilio", message_id="SM123"),
    )


def test_outbound_entry_carries_the_agent_and_the_case() -> None:
    event = _reply(agent_id="agt_7", case_id="case_abc.cus_1")
    assert outbound_entry(event) == {
        "type": "outbound",
        "kind": "message",
        "status": "",
        "event_id": str(event.event_id),
        "at": AT_MS,
        "channel": "sms",
        "text": "We are on it.",
        "subject": "",
        "attachments": 0,
        "agent_id": "agt_7",
        "case_id": "case_abc.cus_1",
        "message_id": "SM123",
    }


def test_outbound_entry_without_agent_or_case_uses_empty_strings() -> None:
    entry = outbound_entry(_reply(agent_id=None, case_id=None))
    assert (entry["agent_id"], entry["case_id"]) == ("", "")


def test_status_entry_uses_empty_strings_for_missing_fields() -> None:
    event_id = uuid.uuid4()
    assert status_entry(event_id, AT, case_id=None, to=None, reason="agent away") == {
        "type": "status",
        "event_id": str(event_id),
        "at": AT_MS,
        "case_id": "",
        "to": "",
        "reason": "agent away",
        "agent_id": "",
        "queue": "",
    }


def test_status_entry_carries_the_transition() -> None:
    entry = status_entry(
        uuid.uuid4(),
        AT,
        case_id="case_abc.cus_1",
        to=CaseStatus.WAITING_ON_CUSTOMER,
        reason="asked for order number",
        agent_id="agt_7",
        queue="billing",
    )
    assert (entry["case_id"], entry["to"], entry["agent_id"], entry["queue"]) == (
        "case_abc.cus_1",
        "waiting_on_customer",
        "agt_7",
        "billing",
    )


# --- snapshots -----------------------------------------------------------------------------

CASE = "case_0123456789abcdef.cus_1"
OPENING_EVENT = "6f1c1b7e-2d7a-4c53-9a53-6a4f7e0f4a11"


def _case_doc(**overrides: Any) -> dict[str, Any]:
    """A case document as the apply script stores it."""
    doc: dict[str, Any] = {
        "case_id": CASE,
        "customer_id": "cus_1",
        "tenant": "default",
        "status": "assigned",
        "opened_at": T0_MS,
        "updated_at": T0_MS + 600_000,
        "resolved_at": 0,
        "closed_at": 0,
        "channels": ["email", "sms"],
        "subject": "Order 123",
        "queue": "support",
        "assigned_agent_id": "agt_1",
        "interaction_count": 2,
        "reopen_count": 0,
        "history": [
            {
                "from": "",
                "to": "new",
                "at": T0_MS,
                "reason": "first contact on email",
                "event_id": OPENING_EVENT,
            },
            {
                "from": "new",
                "to": "assigned",
                "at": T0_MS + 60_000,
                "reason": "routed",
                "event_id": "not-a-uuid",
            },
        ],
        "agents": ["agt_1"],
        "story": [
            {"at": T0_MS, "channel": "email", "text": "My parcel never arrived."},
            {"at": T0_MS + 1, "channel": "email", "text": "Any news?"},
            {"at": T0_MS + 2, "channel": "sms", "text": "Still nothing."},
        ],
        "intents": [{"tag": "delivery", "rule_id": "delivery", "evidence": "parcel"}],
        "folded": {},
        "related_case_id": "",
        "effort": {
            "contacts": 2,
            "channels": ["email", "sms"],
            "switches": 1,
            "transfers": 0,
            "first_contact_at": T0_MS,
            "first_response_at": T0_MS + 90_000,
            "resolved_at": 0,
            "last_channel": "sms",
            "trail": {},
        },
    }
    doc.update(overrides)
    return doc


def test_case_snapshot_reads_the_stored_document() -> None:
    snap = case_snapshot(_case_doc())
    assert snap.case_id == CASE
    assert snap.customer_id == "cus_1"
    assert snap.status is CaseStatus.ASSIGNED
    assert snap.opened_at == T0
    assert snap.updated_at == T0 + timedelta(minutes=10)
    assert snap.opened_at.tzinfo is not None
    assert snap.resolved_at is None
    assert snap.channels == (Channel.EMAIL, Channel.SMS)
    assert (snap.subject, snap.queue, snap.assigned_agent_id) == ("Order 123", "support", "agt_1")
    assert (snap.interaction_count, snap.reopen_count) == (2, 0)
    assert snap.intents == (IntentTag(tag="delivery", rule_id="delivery", evidence="parcel"),)
    assert snap.agents == ("agt_1",)
    assert snap.folded_case_ids == ()


def test_case_snapshot_status_history_starts_with_the_opening() -> None:
    snap = case_snapshot(_case_doc())
    assert snap.status_history == (
        StatusChange(
            from_status=None,
            to_status=CaseStatus.NEW,
            at=T0,
            reason="first contact on email",
            event_id=uuid.UUID(OPENING_EVENT),
        ),
        StatusChange(
            from_status=CaseStatus.NEW,
            to_status=CaseStatus.ASSIGNED,
            at=T0 + timedelta(minutes=1),
            reason="routed",
            event_id=None,
        ),
    )


def test_case_snapshot_effort_counts_and_times() -> None:
    effort = case_snapshot(_case_doc()).effort
    assert effort is not None
    assert (effort.contacts, effort.channel_switches, effort.transfers) == (2, 1, 0)
    assert effort.channels_used == (Channel.EMAIL, Channel.SMS)
    assert effort.first_contact_at == T0
    assert effort.first_response_at == T0 + timedelta(seconds=90)
    assert effort.time_to_first_response_s == 90.0
    assert effort.resolved_at is None
    assert effort.time_to_resolution_s is None


def test_case_snapshot_of_a_resolved_case_has_time_to_resolution() -> None:
    doc = _case_doc(status="resolved", resolved_at=T0_MS + 3_600_500)
    doc["effort"] = {**doc["effort"], "resolved_at": T0_MS + 3_600_500}
    snap = case_snapshot(doc)
    assert snap.resolved_at == T0 + timedelta(seconds=3600.5)
    assert snap.effort is not None
    assert snap.effort.time_to_resolution_s == 3600.5


def test_case_snapshot_without_a_first_response_has_no_response_time() -> None:
    doc = _case_doc()
    doc["effort"] = {**doc["effort"], "first_response_at": 0}
    effort = case_snapshot(doc).effort
    assert effort is not None
    assert effort.first_response_at is None
    assert effort.time_to_first_response_s is None


def test_case_snapshot_accepts_cjson_empty_objects_for_empty_lists() -> None:
    doc = _case_doc(
        status="new", channels={}, history={}, agents={}, intents={}, folded={}, story={}
    )
    doc["effort"] = {**doc["effort"], "channels": {}}
    snap = case_snapshot(doc)
    assert snap.channels == ()
    assert snap.status_history == ()
    assert snap.agents == ()
    assert snap.intents == ()
    assert snap.folded_case_ids == ()
    assert snap.effort is not None
    assert snap.effort.channels_used == ()


def test_case_snapshot_with_empty_effort_has_zero_effort() -> None:
    effort = case_snapshot(_case_doc(effort={})).effort
    assert effort is not None
    assert (effort.contacts, effort.channel_switches, effort.transfers) == (0, 0, 0)
    assert effort.first_contact_at is None
    assert effort.time_to_first_response_s is None


def test_case_snapshot_empty_strings_are_absent_values() -> None:
    snap = case_snapshot(_case_doc(subject="", queue="", assigned_agent_id=""))
    assert (snap.subject, snap.queue, snap.assigned_agent_id) == (None, None, None)


# --- context -------------------------------------------------------------------------------


def _timeline_entry(entry_id: str, at_ms: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"entry_id": entry_id, "at": at_ms, "kind": "message", "text": text, **extra}


def _parts(**overrides: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {
        "timeline": [
            orjson.dumps(_timeline_entry("e3", T0_MS + 3000, "third")).decode(),
            orjson.dumps(
                _timeline_entry(
                    "e1", T0_MS + 1000, "first", direction="inbound", channel="email", case_id=CASE
                )
            ).decode(),
            orjson.dumps(
                {
                    "entry_id": "e2",
                    "at": T0_MS + 2000,
                    "kind": "reply",
                    "direction": "outbound",
                    "channel": "sms",
                    "agent_id": "agt_1",
                    "text": "second",
                }
            ).decode(),
        ],
        "profile": [
            "name",
            "Ana Silva",
            "language",
            "pt",
            "tier",
            "gold",
            "attributes",
            '{"plan":"pro","seats":3}',
            "identifiers",
            '["email:ana@example.com","social_handle:twitter:ana_b"]',
        ],
        "agents": ["agt_2", "agt_1"],
        "contacts_in_window": 2,
    }
    parts.update(overrides)
    return parts


def test_case_context_timeline_is_sorted_by_time() -> None:
    context = case_context("cus_1", _case_doc(), _parts())
    assert [e.entry_id for e in context.recent_timeline] == ["e1", "e2", "e3"]
    first, second, _ = context.recent_timeline
    assert first.at == T0 + timedelta(seconds=1)
    assert (first.kind, first.direction, first.channel, first.case_id) == (
        TimelineEntryKind.MESSAGE,
        Direction.INBOUND,
        Channel.EMAIL,
        CASE,
    )
    assert (second.kind, second.agent_id) == (TimelineEntryKind.REPLY, "agt_1")


def test_case_context_reads_already_decoded_timeline_entries() -> None:
    parts = _parts(timeline=[_timeline_entry("b", 2, "later"), _timeline_entry("a", 1, "sooner")])
    context = case_context("cus_1", None, parts, timeline_is_json=False)
    assert [e.text for e in context.recent_timeline] == ["sooner", "later"]


def test_case_context_builds_the_profile_from_the_stored_hash() -> None:
    context = case_context("cus_1", _case_doc(), _parts())
    assert context.profile == CustomerProfile(
        customer_id="cus_1",
        name="Ana Silva",
        language="pt",
        tier="gold",
        attributes={"plan": "pro", "seats": "3"},
        identifiers=(
            Identifier(kind=IdentifierKind.EMAIL, value="ana@example.com"),
            Identifier(kind=IdentifierKind.SOCIAL_HANDLE, value="ana_b", provider="twitter"),
        ),
    )


def test_case_context_accepts_the_profile_as_a_mapping() -> None:
    profile = {"name": "Ana Silva", "identifiers": '["phone:+15550102345"]'}
    context = case_context("cus_1", None, _parts(profile=profile))
    assert context.profile.name == "Ana Silva"
    assert context.profile.identifiers == (
        Identifier(kind=IdentifierKind.PHONE, value="+15550102345"),
    )


def test_case_context_of_a_customer_with_nothing_stored_is_empty() -> None:
    parts = {"timeline": {}, "profile": {}, "agents": {}}
    context = case_context("cus_1", None, parts)
    assert context == CaseContext(profile=CustomerProfile(customer_id="cus_1"))


@pytest.mark.parametrize(("contacts", "repeat"), [(None, False), (0, False), (1, False), (2, True)])
def test_case_context_flags_a_repeat_contact_from_two_contacts(
    contacts: int | None, repeat: bool
) -> None:
    context = case_context("cus_1", None, _parts(contacts_in_window=contacts))
    assert context.contacts_last_7_days == (contacts or 0)
    assert context.repeat_contact is repeat


def test_case_context_renders_the_story_so_far() -> None:
    context = case_context("cus_1", _case_doc(), _parts())
    assert context.story_so_far == (
        "[by email] My parcel never arrived.\n[then] Any news?\n[by sms] Still nothing."
    )


def test_case_context_without_a_case_has_no_story() -> None:
    assert case_context("cus_1", None, _parts()).story_so_far == ""


def test_case_context_lists_previous_agents_as_stored() -> None:
    assert case_context("cus_1", None, _parts()).previous_agents == ("agt_2", "agt_1")


# --- case events ---------------------------------------------------------------------------

OTHER = "case_fedcba9876543210.cus_2"
NOW = datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC)


def _outcome(
    *,
    type_: str = "inbound",
    case_id: str = CASE,
    transitions: tuple[dict[str, Any], ...] = (),
    reopened: str = "",
    event_id: str = "0b6a1c3e-8a0f-4d1e-bb6e-3f2f1c0a9d77",
) -> EntryOutcome:
    return EntryOutcome(
        event_id=event_id,
        type=type_,
        case_id=case_id,
        transitions=transitions,
        opened="",
        reopened=reopened,
        moved_cases=(),
        error="",
        replayed=False,
    )


def _move(case_id: str, from_: str, to: str, at_ms: int = T0_MS) -> dict[str, Any]:
    return {"case_id": case_id, "from": from_, "to": to, "reason": "because", "at": at_ms}


def _announce(outcome: EntryOutcome, cases: dict[str, dict[str, Any]] | None = None) -> list[Any]:
    if cases is None:
        cases = {CASE: _case_doc(), OTHER: _case_doc(case_id=OTHER, customer_id="cus_2")}
    contexts = {cid: CaseContext(profile=CustomerProfile(customer_id="cus_1")) for cid in cases}
    return case_events(outcome, tenant="acme", cases=cases, context_for=contexts, occurred_at=NOW)


def test_opening_a_case_is_announced_as_opened_only() -> None:
    events = _announce(_outcome(transitions=(_move(CASE, "", "new"),)))
    (event,) = events
    assert event.kind is CaseEventKind.OPENED
    assert event.case.case_id == CASE
    assert event.transition == StatusChange(
        from_status=None,
        to_status=CaseStatus.NEW,
        at=T0,
        reason="because",
        event_id=uuid.UUID(_outcome().event_id),
    )


@pytest.mark.parametrize(
    ("from_", "to", "reopened", "kind"),
    [
        ("", "new", "", CaseEventKind.OPENED),
        ("resolved", "new", CASE, CaseEventKind.REOPENED),
        ("resolved", "new", "", CaseEventKind.STATUS_CHANGED),
        ("resolved", "new", OTHER, CaseEventKind.STATUS_CHANGED),
        ("resolved", "closed", CASE, CaseEventKind.STATUS_CHANGED),
        ("assigned", "waiting_on_customer", "", CaseEventKind.STATUS_CHANGED),
    ],
)
def test_each_transition_is_announced_with_its_kind(
    from_: str, to: str, reopened: str, kind: CaseEventKind
) -> None:
    (event,) = _announce(_outcome(transitions=(_move(CASE, from_, to),), reopened=reopened))
    assert event.kind is kind
    assert event.transition is not None
    assert str(event.transition.to_status) == to


def test_an_entry_without_transitions_is_announced_as_one_update() -> None:
    (event,) = _announce(_outcome())
    assert event.kind is CaseEventKind.UPDATED
    assert event.case.case_id == CASE
    assert event.transition is None


def test_several_transitions_are_announced_in_order_and_cover_the_update() -> None:
    transitions = (
        _move(OTHER, "resolved", "closed"),
        _move(CASE, "", "new"),
        _move(CASE, "new", "queued"),
    )
    events = _announce(_outcome(transitions=transitions))
    assert [(e.kind, e.case.case_id) for e in events] == [
        (CaseEventKind.STATUS_CHANGED, OTHER),
        (CaseEventKind.OPENED, CASE),
        (CaseEventKind.STATUS_CHANGED, CASE),
    ]


def test_a_transition_of_another_case_does_not_cover_the_update() -> None:
    events = _announce(_outcome(transitions=(_move(OTHER, "resolved", "closed"),)))
    assert [(e.kind, e.case.case_id) for e in events] == [
        (CaseEventKind.STATUS_CHANGED, OTHER),
        (CaseEventKind.UPDATED, CASE),
    ]


def test_a_fold_announces_the_closed_absorbed_case_and_the_folded_survivor() -> None:
    outcome = _outcome(type_="fold", transitions=(_move(OTHER, "queued", "closed"),))
    events = _announce(outcome)
    assert [(e.kind, e.case.case_id) for e in events] == [
        (CaseEventKind.STATUS_CHANGED, OTHER),
        (CaseEventKind.FOLDED, CASE),
    ]


def test_transitions_of_cases_not_returned_are_skipped() -> None:
    events = _announce(_outcome(transitions=(_move(OTHER, "queued", "closed"),)), {})
    assert events == []


def test_an_entry_for_no_case_announces_nothing() -> None:
    assert _announce(_outcome(type_="profile", case_id="")) == []


def test_case_events_are_caused_by_the_entry_and_carry_tenant_and_time() -> None:
    outcome = _outcome(transitions=(_move(OTHER, "resolved", "closed"),))
    source = uuid.UUID(outcome.event_id)
    events = _announce(outcome)
    assert len(events) == 2
    for event in events:
        assert event.causation_id == source
        assert event.cause_event_id == source
        assert event.tenant == "acme"
        assert event.occurred_at == NOW
        assert event.event_id != source


def test_case_event_ids_are_the_same_on_replay_and_distinct_per_event() -> None:
    transitions = (_move(CASE, "", "new"), _move(CASE, "new", "queued"))
    outcome = _outcome(transitions=transitions)
    first = [e.event_id for e in _announce(outcome)]
    again = [e.event_id for e in _announce(outcome)]
    assert first == again
    assert len(set(first)) == len(first) == 2


def test_case_event_ids_differ_per_entry() -> None:
    one = _announce(_outcome(event_id=str(uuid.uuid4())))
    two = _announce(_outcome(event_id=str(uuid.uuid4())))
    assert one[0].event_id != two[0].event_id


def test_case_events_carry_the_snapshot_and_the_context_for_their_case() -> None:
    cases = {CASE: _case_doc()}
    context = CaseContext(
        profile=CustomerProfile(customer_id="cus_1", name="Ana"), story_so_far="[by sms] hi"
    )
    (event,) = case_events(
        _outcome(), tenant="acme", cases=cases, context_for={CASE: context}, occurred_at=NOW
    )
    assert event.case == case_snapshot(cases[CASE])
    assert event.context == context


def _stored_entry(n: int, text: str) -> bytes:
    return orjson.dumps(
        {"entry_id": f"e{n}", "at": 1_700_000_000_000 + n, "kind": "message", "text": text}
    )


def test_the_timeline_parse_cache_is_bounded_by_bytes_as_well_as_entries() -> None:
    cache = _TimelineCache(entries=1_000, size=64 * 1024)
    long_text = "x" * 4_000
    for n in range(200):  # ~800 KB of stored JSON, far under the entry bound
        entry = cache.entry(_stored_entry(n, long_text))
        assert entry.text == long_text
    kept = sum(len(raw) for generation in (cache.young, cache.old) for raw in generation)
    # Two generations of at most the budget (plus the entry that filled one) stay.
    assert kept <= 2 * (64 * 1024 + len(_stored_entry(0, long_text)))
    # What recent batches used is still parsed once: the same object comes back.
    last = _stored_entry(199, long_text)
    assert cache.entry(last) is cache.entry(last)
