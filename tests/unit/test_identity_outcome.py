"""Resolution outcomes: the records the identity worker publishes for one resolved event."""

from __future__ import annotations

import pytest

from omnirouter.events import (
    CustomerMerged,
    DeadLetter,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    MergeReview,
    ResolvedInteraction,
    topic_spec,
)
from omnirouter.pipeline.identity.normalize import NormalizedIdentifiers, normalize_identifiers
from omnirouter.pipeline.identity.outcome import (
    no_usable_identifier,
    resolution_events,
    summarize,
)
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import MergeRecord, Resolution, ReviewItem
from support.events import identifier, inbound

POLICY = IdentityPolicy()


def _sms(*raw_phones: str) -> tuple[InteractionEvent, NormalizedIdentifiers]:
    event = inbound("sms", *(identifier("phone", p) for p in raw_phones))
    return event, normalize_identifiers(event.identifiers, POLICY)


def _new_customer(customer_id: str = "cus_new") -> Resolution:
    return Resolution(customer_id=customer_id, is_new=True, replayed=False)


def _merge(event: InteractionEvent) -> MergeRecord:
    return MergeRecord(
        survivor_id="cus_old",
        absorbed_id="cus_young",
        moved=("email:ana@example.com", "social_handle:twitter:ana_b"),
        linking=("phone:+15550102345",),
        event_id=str(event.event_id),
        at_ms=1_700_000_000_000,
    )


def _review(event: InteractionEvent) -> ReviewItem:
    return ReviewItem(
        review_id="rev_1",
        customer_ids=("cus_a", "cus_b", "cus_c"),
        resolved_to="cus_a",
        guardrail="max_customers_per_identifier",
        reason="phone:+15550102345 already joins 4 customers",
        identifiers=("phone:+15550102345",),
        event_id=str(event.event_id),
        created_at_ms=1_700_000_000_000,
    )


# --- the resolved event --------------------------------------------------------------------


def test_new_customer_yields_exactly_one_resolved_event_keyed_by_customer() -> None:
    event, normalized = _sms("+1 (555) 010-2345")
    out = resolution_events(event, normalized, _new_customer("cus_new"))

    (resolved,) = out
    assert resolved.topic_key == "interactions.resolved"
    assert resolved.key == "cus_new"
    assert isinstance(resolved.event, ResolvedInteraction)
    assert resolved.event.customer_id == "cus_new"
    assert resolved.event.is_new_customer is True
    assert resolved.event.interaction == event
    assert resolved.event.identifiers == (
        Identifier(kind=IdentifierKind.PHONE, value="+15550102345"),
    )
    assert resolved.event.merged_customer_ids == ()
    assert resolved.event.review_ids == ()
    assert resolved.event.rejected_identifiers == ()


def test_resolved_event_is_caused_by_and_shares_tenant_and_time_with_the_inbound_event() -> None:
    event = inbound("sms", identifier("phone", "+15550102345"), tenant="acme")
    normalized = normalize_identifiers(event.identifiers, POLICY)
    (resolved,) = resolution_events(event, normalized, _new_customer())
    assert resolved.event.causation_id == event.event_id
    assert resolved.event.tenant == "acme"
    assert resolved.event.occurred_at == event.occurred_at


def test_resolved_event_id_is_the_same_on_replay() -> None:
    event, normalized = _sms("+15550102345")
    first = resolution_events(event, normalized, _new_customer())
    again = resolution_events(event, normalized, _new_customer())
    assert first[0].event.event_id == again[0].event.event_id
    assert first[0].event.event_id != event.event_id


def test_resolved_event_id_differs_per_source_event() -> None:
    one, normalized_one = _sms("+15550102345")
    two, normalized_two = _sms("+15550102345")
    assert one.event_id != two.event_id
    (a,) = resolution_events(one, normalized_one, _new_customer())
    (b,) = resolution_events(two, normalized_two, _new_customer())
    assert a.event.event_id != b.event.event_id


def test_rejected_identifiers_are_carried_into_the_resolved_event() -> None:
    event, normalized = _sms("+15550102345", "abc")
    (resolved,) = resolution_events(event, normalized, _new_customer())
    assert isinstance(resolved.event, ResolvedInteraction)
    assert resolved.event.rejected_identifiers == normalized.rejected
    assert resolved.event.rejected_identifiers[0].value_preview == "abc"


def test_not_attached_identifier_is_reported_as_rejected_with_why() -> None:
    event = inbound(
        "sms", identifier("phone", "+15550102345"), identifier("email", "Ana@Example.com")
    )
    normalized = normalize_identifiers(event.identifiers, POLICY)
    resolution = Resolution(
        customer_id="cus_a",
        is_new=False,
        replayed=False,
        attached=("phone:+15550102345",),
        not_attached=(("email:ana@example.com", "held for merge review rev_1"),),
    )
    (resolved,) = resolution_events(event, normalized, resolution)

    assert isinstance(resolved.event, ResolvedInteraction)
    (rejected,) = resolved.event.rejected_identifiers
    assert rejected.kind is IdentifierKind.EMAIL
    assert rejected.value_preview == "ana@example.com"
    assert rejected.value_length == len("ana@example.com")
    assert rejected.reason == "not linked: held for merge review rev_1"
    # Still one of the event's normalized identifiers: nothing vanishes.
    assert [i.address for i in resolved.event.identifiers] == [
        "phone:+15550102345",
        "email:ana@example.com",
    ]


def test_not_attached_identifiers_follow_the_normalization_rejections() -> None:
    event, normalized = _sms("abc", "+15550102345")
    resolution = Resolution(
        customer_id="cus_a",
        is_new=False,
        replayed=False,
        not_attached=(("phone:+15550102345", "customer has too many identifiers"),),
    )
    (resolved,) = resolution_events(event, normalized, resolution)
    assert isinstance(resolved.event, ResolvedInteraction)
    reasons = [r.reason for r in resolved.event.rejected_identifiers]
    assert reasons[0].startswith("not a phone number")
    assert reasons[1] == "not linked: customer has too many identifiers"


# --- merges --------------------------------------------------------------------------------


def test_merge_yields_customer_merged_before_the_resolved_event() -> None:
    event, normalized = _sms("+15550102345")
    resolution = Resolution(
        customer_id="cus_old", is_new=False, replayed=False, merges=(_merge(event),)
    )
    out = resolution_events(event, normalized, resolution)

    assert [(o.topic_key, o.key) for o in out] == [
        ("customers.merged", "cus_old"),
        ("interactions.resolved", "cus_old"),
    ]
    merged = out[0].event
    assert isinstance(merged, CustomerMerged)
    assert merged.survivor_id == "cus_old"
    assert merged.absorbed_id == "cus_young"
    assert merged.causation_id == event.event_id
    assert merged.triggered_by_event_id == event.event_id
    assert merged.linking_identifier == Identifier(kind=IdentifierKind.PHONE, value="+15550102345")
    assert merged.moved_identifiers == (
        Identifier(kind=IdentifierKind.EMAIL, value="ana@example.com"),
        Identifier(kind=IdentifierKind.SOCIAL_HANDLE, value="ana_b", provider="twitter"),
    )
    assert "phone:+15550102345" in merged.cause
    resolved = out[1].event
    assert isinstance(resolved, ResolvedInteraction)
    assert resolved.merged_customer_ids == ("cus_young",)


def test_merge_through_customer_id_has_no_linking_identifier() -> None:
    event, normalized = _sms("+15550102345")
    merge = MergeRecord(
        survivor_id="cus_old",
        absorbed_id="cus_young",
        moved=(),
        linking=(),
        event_id=str(event.event_id),
        at_ms=0,
    )
    resolution = Resolution(customer_id="cus_old", is_new=False, replayed=False, merges=(merge,))
    merged = resolution_events(event, normalized, resolution)[0].event
    assert isinstance(merged, CustomerMerged)
    assert merged.linking_identifier is None
    assert merged.moved_identifiers == ()
    assert "via customer_id" in merged.cause


def test_each_merge_of_one_event_gets_its_own_stable_event_id() -> None:
    event, normalized = _sms("+15550102345")
    first = _merge(event)
    second = MergeRecord(
        survivor_id="cus_old",
        absorbed_id="cus_third",
        moved=(),
        linking=("phone:+15550102345",),
        event_id=str(event.event_id),
        at_ms=0,
    )
    resolution = Resolution(
        customer_id="cus_old", is_new=False, replayed=False, merges=(first, second)
    )
    out = resolution_events(event, normalized, resolution)
    again = resolution_events(event, normalized, resolution)

    ids = [o.event.event_id for o in out]
    assert len(set(ids)) == 3
    assert ids == [o.event.event_id for o in again]
    resolved = out[-1].event
    assert isinstance(resolved, ResolvedInteraction)
    assert resolved.merged_customer_ids == ("cus_young", "cus_third")


# --- reviews -------------------------------------------------------------------------------


def test_review_yields_merge_review_keyed_by_the_customer_resolved_to() -> None:
    event, normalized = _sms("+15550102345")
    resolution = Resolution(
        customer_id="cus_a", is_new=False, replayed=False, reviews=(_review(event),)
    )
    out = resolution_events(event, normalized, resolution)

    assert [(o.topic_key, o.key) for o in out] == [
        ("identity.reviews", "cus_a"),
        ("interactions.resolved", "cus_a"),
    ]
    review = out[0].event
    assert isinstance(review, MergeReview)
    assert review.review_id == "rev_1"
    assert review.customer_ids == ("cus_a", "cus_b", "cus_c")
    assert review.resolved_to == "cus_a"
    assert review.guardrail == "max_customers_per_identifier"
    assert review.identifiers == (Identifier(kind=IdentifierKind.PHONE, value="+15550102345"),)
    assert review.causation_id == event.event_id
    assert review.triggered_by_event_id == event.event_id
    resolved = out[1].event
    assert isinstance(resolved, ResolvedInteraction)
    assert resolved.review_ids == ("rev_1",)


def test_merges_come_before_reviews_before_the_resolved_event() -> None:
    event, normalized = _sms("+15550102345")
    resolution = Resolution(
        customer_id="cus_old",
        is_new=False,
        replayed=False,
        merges=(_merge(event),),
        reviews=(_review(event),),
    )
    out = resolution_events(event, normalized, resolution)
    assert [o.topic_key for o in out] == [
        "customers.merged",
        "identity.reviews",
        "interactions.resolved",
    ]
    assert summarize(out) == {
        "customers.merged": 1,
        "identity.reviews": 1,
        "interactions.resolved": 1,
    }


def test_every_record_carries_the_model_its_topic_declares() -> None:
    event, normalized = _sms("+15550102345")
    resolution = Resolution(
        customer_id="cus_old",
        is_new=False,
        replayed=False,
        merges=(_merge(event),),
        reviews=(_review(event),),
    )
    for record in resolution_events(event, normalized, resolution):
        assert isinstance(record.event, topic_spec(record.topic_key).model)


# --- dead letter ---------------------------------------------------------------------------


def _dead_letter(
    event: InteractionEvent, normalized: NormalizedIdentifiers, raw: bytes, key: bytes | None
) -> DeadLetter:
    return no_usable_identifier(
        event,
        normalized,
        raw,
        key,
        source_topic="omni.interactions.inbound",
        partition=3,
        offset=42,
    )


def test_no_usable_identifier_dead_letters_the_original_bytes_at_the_identity_stage() -> None:
    event = inbound(
        "webform", identifier("phone", "abc"), identifier("email", "noreply@example.com")
    )
    normalized = normalize_identifiers(event.identifiers, POLICY)
    assert normalized.usable == ()
    raw = b'{"not": "re-encoded", "bytes": "\xff\xfe"}'

    letter = _dead_letter(event, normalized, raw, b"phone:abc")

    assert letter.stage == "identity"
    assert letter.error_type == "NoUsableIdentifier"
    assert letter.original_value() == raw
    assert letter.original_key() == b"phone:abc"
    assert letter.source_topic == "omni.interactions.inbound"
    assert (letter.source_partition, letter.source_offset) == (3, 42)
    assert letter.causation_id == event.event_id
    assert letter.tenant == event.tenant


def test_no_usable_identifier_reason_names_each_rejection() -> None:
    event = inbound(
        "webform", identifier("phone", "abc"), identifier("email", "noreply@example.com")
    )
    normalized = normalize_identifiers(event.identifiers, POLICY)

    letter = _dead_letter(event, normalized, b"{}", None)

    assert letter.reason.startswith("no usable identifier (")
    assert letter.original_key() is None
    for rejected in normalized.rejected:
        assert rejected.reason in letter.reason
        assert f"{rejected.kind} {rejected.value_preview!r}" in letter.reason


def test_no_usable_identifier_marks_cut_previews_and_bounds_the_reason() -> None:
    event = inbound("api", *(identifier("external_id", f"{i}" + "x" * 999) for i in range(10)))
    normalized = normalize_identifiers(event.identifiers, POLICY)

    letter = _dead_letter(event, normalized, b"{}", None)

    assert "…: longer than 320 characters" in letter.reason
    assert len(letter.reason) <= 2000


@pytest.mark.parametrize("offset", [0, 42])
def test_dead_letter_id_is_the_same_on_replay(offset: int) -> None:
    event, _ = _sms("abc")
    normalized = normalize_identifiers(event.identifiers, POLICY)
    ids = {
        no_usable_identifier(
            event, normalized, b"{}", None, source_topic="t", partition=0, offset=offset
        ).event_id
        for _ in range(2)
    }
    assert len(ids) == 1
