"""The wire contract: what producers may write and what consumers get back."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from omnirouter.events import (
    CandidateAgent,
    CaseContext,
    CaseRouted,
    CaseSnapshot,
    CaseStatus,
    Channel,
    Content,
    CustomerMerged,
    CustomerProfile,
    DeadLetter,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    ProviderRefs,
    ResolvedInteraction,
    RoutingDecision,
    RoutingOutcome,
    RoutingReason,
    TimelineEntry,
    TimelineEntryKind,
    UndecodableEvent,
    decode,
    decode_or_dead_letter,
    derived_event_id,
    encode,
)

WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
PHONE = Identifier(kind=IdentifierKind.PHONE, value="+15550102345", provider="whatsapp")


def inbound(**overrides: Any) -> InteractionEvent:
    fields: dict[str, Any] = {
        "occurred_at": WHEN,
        "channel": Channel.WHATSAPP,
        "direction": Direction.INBOUND,
        "identifiers": (PHONE,),
        "display_name": "Ada",
        "content": Content(text="my parcel is late", language="en"),
        "provider": ProviderRefs(provider="whatsapp", message_id="wamid.1"),
        "attributes": {"tier": "gold"},
    }
    fields.update(overrides)
    return InteractionEvent(**fields)


def decision(**overrides: Any) -> RoutingDecision:
    fields: dict[str, Any] = {
        "occurred_at": WHEN,
        "case_id": "case-1",
        "customer_id": "cus-1",
        "queue": "billing",
        "strategy": "skills",
        "outcome": RoutingOutcome.OFFERED,
        "agent_id": "agent-7",
        "priority": 2,
        "candidates": (
            CandidateAgent(agent_id="agent-7", score=0.9, eligible=True),
            CandidateAgent(agent_id="agent-8", score=0.0, eligible=False, filtered_because="away"),
        ),
        "reasons": (
            RoutingReason(
                code="skill_match",
                message="speaks en",
                data={"language": "en", "matched": True, "skills": 3, "score": 0.9, "x": None},
            ),
        ),
    }
    fields.update(overrides)
    return RoutingDecision(**fields)


def snapshot() -> CaseSnapshot:
    return CaseSnapshot(
        case_id="case-1",
        customer_id="cus-1",
        status=CaseStatus.ASSIGNED,
        opened_at=WHEN,
        updated_at=WHEN,
        channels=(Channel.WHATSAPP, Channel.EMAIL),
        interaction_count=2,
    )


def every_event_type() -> list[BaseModel]:
    event = inbound()
    return [
        event,
        inbound(direction=Direction.OUTBOUND, customer_id="cus-1", agent_id="agent-7"),
        ResolvedInteraction(
            occurred_at=WHEN,
            causation_id=event.event_id,
            customer_id="cus-1",
            interaction=event,
            is_new_customer=False,
            merged_customer_ids=("cus-2",),
        ),
        CustomerMerged(
            occurred_at=WHEN,
            survivor_id="cus-1",
            absorbed_id="cus-2",
            cause="shared identifier",
            linking_identifier=PHONE,
            moved_identifiers=(Identifier(kind=IdentifierKind.EMAIL, value="ada@example.com"),),
            triggered_by_event_id=event.event_id,
        ),
        decision(),
        CaseRouted(
            occurred_at=WHEN,
            case=snapshot(),
            decision=decision(),
            context=CaseContext(
                profile=CustomerProfile(customer_id="cus-1", tier="vip"),
                recent_timeline=(
                    TimelineEntry(
                        entry_id="e-1",
                        at=WHEN,
                        kind=TimelineEntryKind.MESSAGE,
                        channel=Channel.EMAIL,
                        text="hi",
                    ),
                ),
                repeat_contact=True,
            ),
        ),
        DeadLetter.for_payload(
            b"\xff\x00",
            b"phone:+15550102345",
            stage="ingress",
            reason="x",
            error_type="ValueError",
            headers={"h": "v"},
        ),
    ]


@pytest.mark.parametrize("event", every_event_type(), ids=lambda e: type(e).__name__)
def test_every_event_type_round_trips_through_encode_and_decode(event: BaseModel) -> None:
    assert decode(type(event), encode(event)) == event


def test_encoded_event_is_json_carrying_schema_version_and_ids_as_strings() -> None:
    event = inbound()
    payload = orjson.loads(encode(event))
    assert payload["schema_version"] == 1
    assert payload["event_id"] == str(event.event_id)
    assert payload["identifiers"] == [
        {"kind": "phone", "value": "+15550102345", "provider": "whatsapp"}
    ]


def test_naive_occurred_at_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        inbound(occurred_at=datetime(2025, 3, 4, 5, 6, 7))


def test_received_at_defaults_to_an_aware_utc_now() -> None:
    assert inbound().received_at.utcoffset() is not None


@pytest.mark.parametrize("value", ["+1 (555) 010-2345", "Ana@Example.com ", "", "x" * 10_240])
def test_inbound_identifiers_keep_raw_values_for_the_identity_worker(value: str) -> None:
    """One malformed identifier must not make the whole event undecodable."""
    assert Identifier(kind=IdentifierKind.PHONE, value=value).value == value


def test_identifier_longer_than_the_wire_limit_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Identifier(kind=IdentifierKind.ACCOUNT_NUMBER, value="x" * 16_385)


def test_identifier_address_is_kind_and_value_with_network_only_for_handles() -> None:
    assert PHONE.address == "phone:+15550102345"
    handle = Identifier(kind=IdentifierKind.SOCIAL_HANDLE, value="@x", provider="twitter")
    assert handle.address == "social_handle:twitter:@x"


def test_inbound_event_without_identifier_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one sender identifier"):
        inbound(identifiers=())


def test_outbound_event_without_customer_id_is_rejected() -> None:
    with pytest.raises(ValidationError, match="customer_id"):
        inbound(direction=Direction.OUTBOUND)


def test_routing_key_is_sender_address_inbound_and_customer_id_outbound() -> None:
    assert inbound().routing_key == "phone:+15550102345"
    outbound = inbound(direction=Direction.OUTBOUND, customer_id="cus-1")
    assert outbound.routing_key == "cus-1"


def test_events_are_frozen() -> None:
    event = inbound()
    with pytest.raises(ValidationError, match="frozen"):
        event.tenant = "other"  # type: ignore[misc]


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        inbound(priority="high")


@pytest.mark.parametrize("tenant", ["", "Acme", "-acme", "acme corp", "a" * 64])
def test_malformed_tenant_is_rejected(tenant: str) -> None:
    with pytest.raises(ValidationError, match="tenant"):
        inbound(tenant=tenant)


def test_derived_event_id_is_the_same_on_replay_and_differs_per_stage() -> None:
    source = uuid.uuid4()
    assert derived_event_id(source, "identity") == derived_event_id(source, "identity")
    assert derived_event_id(source, "identity") != derived_event_id(source, "cases")
    assert derived_event_id(source, "identity") != derived_event_id(uuid.uuid4(), "identity")


@pytest.mark.parametrize("stage", ["identity", "case:new", "case:case_0123.c-9:update", "é€𝄞"])
def test_derived_event_id_stays_the_uuid5_of_the_source_and_stage(stage: str) -> None:
    """Ids already on Kafka and in Redis were uuid5: a replay must derive the same ones."""
    for source in (uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        assert derived_event_id(source, stage) == uuid.uuid5(source, stage)


def test_unknown_schema_version_is_the_reason_even_when_fields_also_changed() -> None:
    payload = orjson.loads(encode(inbound()))
    payload.update(schema_version=7, a_field_from_the_future="x")
    with pytest.raises(UndecodableEvent) as caught:
        decode(InteractionEvent, orjson.dumps(payload))
    assert caught.value.reason == "unknown schema_version 7 (this consumer knows 1)"


def test_constructing_an_event_with_an_unsupported_schema_version_fails() -> None:
    with pytest.raises(ValidationError, match="unknown schema_version 2"):
        inbound(schema_version=2)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"text": "caf\xe9"}', "invalid UTF-8"),
        (b'{"text": ', "invalid JSON: "),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_undecodable_bytes_become_a_dead_letter_keeping_the_original_bytes(
    raw: bytes, reason: str
) -> None:
    result = decode_or_dead_letter(
        InteractionEvent,
        raw,
        b"\x00key",
        stage="identity",
        source_topic="omni.interactions.inbound",
        source_partition=3,
        source_offset=42,
    )
    assert isinstance(result, DeadLetter)
    assert result.reason.startswith(reason)
    assert result.error_type.startswith("UndecodableEvent.")
    assert (result.stage, result.source_topic, result.source_partition, result.source_offset) == (
        "identity",
        "omni.interactions.inbound",
        3,
        42,
    )
    # What matters is surviving the trip through Kafka, so check after encode/decode.
    stored = decode(DeadLetter, encode(result))
    assert stored.original_value() == raw
    assert stored.original_key() == b"\x00key"


def test_validation_failure_reason_names_the_field_path() -> None:
    payload = orjson.loads(encode(inbound()))
    payload["identifiers"][0]["kind"] = "fax"
    with pytest.raises(UndecodableEvent) as caught:
        decode(InteractionEvent, orjson.dumps(payload))
    assert caught.value.code == "validation_failed"
    assert caught.value.reason.startswith("validation failed: identifiers.0.kind: ")


def test_validation_failure_reason_lists_at_most_three_errors() -> None:
    payload = {"occurred_at": "yesterday", "channel": "fax", "direction": "up", "provider": 1}
    with pytest.raises(UndecodableEvent) as caught:
        decode(InteractionEvent, orjson.dumps(payload))
    assert caught.value.reason.count("; ") == 2  # three "path: message" parts
    assert caught.value.reason.endswith("(+1 more)")


def test_decode_or_dead_letter_returns_the_event_when_it_is_valid() -> None:
    event = inbound()
    assert decode_or_dead_letter(InteractionEvent, encode(event), None, stage="identity") == event


def test_dead_letter_of_a_known_record_gets_the_same_id_on_replay() -> None:
    def fail() -> DeadLetter:
        return DeadLetter.for_payload(
            b"{}",
            None,
            stage="cases",
            reason="boom",
            error_type="KeyError",
            source_topic="omni.interactions.resolved",
            source_partition=0,
            source_offset=9,
        )

    assert fail().event_id == fail().event_id
    assert fail().original_key() is None


def test_dead_letter_rejects_a_value_that_is_not_base64() -> None:
    with pytest.raises(ValidationError, match="base64"):
        DeadLetter(
            occurred_at=WHEN, stage="x", reason="y", error_type="z", original_value_b64="%%%"
        )


def test_dead_letter_b64_field_is_standard_base64_of_the_value() -> None:
    letter = DeadLetter.for_payload(b"\xfe\xff", None, stage="s", reason="r", error_type="e")
    assert letter.original_value_b64 == base64.b64encode(b"\xfe\xff").decode()


@pytest.mark.parametrize("outcome", [RoutingOutcome.OFFERED, RoutingOutcome.ASSIGNED])
def test_offer_or_assignment_without_an_agent_is_rejected(outcome: RoutingOutcome) -> None:
    with pytest.raises(ValidationError, match="agent_id"):
        decision(outcome=outcome, agent_id=None)


def test_queued_decision_needs_no_agent() -> None:
    assert decision(outcome=RoutingOutcome.QUEUED, agent_id=None).agent_id is None


def test_case_routed_with_a_decision_for_another_case_is_rejected() -> None:
    with pytest.raises(ValidationError, match="same case"):
        CaseRouted(
            occurred_at=WHEN,
            case=snapshot(),
            decision=decision(case_id="case-2"),
            context=CaseContext(profile=CustomerProfile(customer_id="cus-1")),
        )


def test_customer_cannot_be_merged_into_itself() -> None:
    with pytest.raises(ValidationError, match="itself"):
        CustomerMerged(occurred_at=WHEN, survivor_id="c", absorbed_id="c", cause="shared phone")


def test_routing_reason_data_keeps_booleans_and_integers_apart_after_a_round_trip() -> None:
    data = decode(RoutingDecision, encode(decision())).reasons[0].data
    assert data["matched"] is True
    assert type(data["skills"]) is int
    assert data["score"] == 0.9
    assert data["x"] is None
