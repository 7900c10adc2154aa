"""The identity worker on the real broker and Redis: one customer across every channel."""

from __future__ import annotations

import pytest

from omnirouter.events import (
    CustomerMerged,
    CustomerUnmerged,
    DeadLetter,
    MergeReview,
    ResolvedInteraction,
    encode,
)
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import UnmergeRefused
from support.events import identifier, inbound
from support.waiting import eventually_async

pytestmark = pytest.mark.integration


def _resolved_for(event_id):  # type: ignore[no-untyped-def]
    return lambda items: any(i.causation_id == event_id for i in items)


async def _resolve(identity, event) -> ResolvedInteraction:  # type: ignore[no-untyped-def]
    identity.send(event)
    items = await identity.wait(
        "interactions.resolved",
        ResolvedInteraction,
        _resolved_for(event.event_id),
        f"resolution of {event.event_id}",
    )
    return next(i for i in items if i.causation_id == event.event_id)


async def test_sms_and_whatsapp_from_one_number_are_one_customer(identity) -> None:  # type: ignore[no-untyped-def]
    sms = await _resolve(
        identity, inbound("sms", identifier("phone", "+1 (555) 010-2345"), provider="twilio")
    )
    whatsapp = await _resolve(
        identity,
        inbound(
            "whatsapp", identifier("phone", "15550102345", provider="whatsapp"), provider="meta"
        ),
    )

    assert sms.customer_id == whatsapp.customer_id
    assert sms.is_new_customer and not whatsapp.is_new_customer
    assert [i.address for i in whatsapp.identifiers] == ["phone:+15550102345"]
    assert whatsapp.interaction.content.text == "hello"  # the story travels with the event


async def test_email_and_form_join_two_customers_and_unmerge_restores_both(identity) -> None:  # type: ignore[no-untyped-def]
    phone_customer = (
        await _resolve(identity, inbound("sms", identifier("phone", "+1 (555) 010-2345")))
    ).customer_id
    email = await _resolve(
        identity, inbound("email", identifier("email", "Ana@Example.com "), provider="smtp")
    )
    assert email.is_new_customer
    assert email.customer_id != phone_customer
    assert [i.value for i in email.identifiers] == ["ana@example.com"]

    form = await _resolve(
        identity,
        inbound(
            "webform", identifier("email", "ana@example.com"), identifier("phone", "555-010-2345")
        ),
    )

    # The oldest customer survives and absorbs the other.
    assert form.customer_id == phone_customer
    assert form.merged_customer_ids == (email.customer_id,)
    merged = await identity.wait(
        "customers.merged", CustomerMerged, lambda items: len(items) == 1, "the merged event"
    )
    assert merged[0].survivor_id == phone_customer
    assert merged[0].absorbed_id == email.customer_id
    assert (
        merged[0].linking_identifier is not None
        and merged[0].linking_identifier.value == "ana@example.com"
    )
    assert "carried identifiers of both customers" in merged[0].cause
    # A later event naming the absorbed customer is redirected to the survivor.
    later = inbound("webchat", identifier("chat_visitor", "v-77"))
    later = later.model_copy(update={"customer_id": email.customer_id})
    assert (await _resolve(identity, later)).customer_id == phone_customer

    outcome = await identity.operations.unmerge(
        phone_customer, operator="supervisor-1", reason="two people"
    )

    assert outcome.split.restored_id == email.customer_id
    restored = await identity.store.customer("default", email.customer_id)
    survivor = await identity.store.customer("default", phone_customer)
    assert restored is not None and survivor is not None
    assert restored.status == "active"
    assert [i.address for i in restored.identifiers] == ["email:ana@example.com"]
    assert "phone:+15550102345" in [i.address for i in survivor.identifiers]
    assert "email:ana@example.com" not in [i.address for i in survivor.identifiers]
    announced = await identity.wait(
        "customers.unmerged", CustomerUnmerged, lambda items: len(items) == 1, "the unmerged event"
    )
    assert announced[0].restored_id == email.customer_id and announced[0].operator == "supervisor-1"
    # After the split, each identifier leads to its own customer again.
    assert (
        await _resolve(identity, inbound("email", identifier("email", "ana@example.com")))
    ).customer_id == email.customer_id
    # Undoing the same merge twice is refused with a reason, not silently repeated.
    with pytest.raises(UnmergeRefused, match="no recorded merge"):
        await identity.operations.unmerge(phone_customer, operator="supervisor-1")


@pytest.fixture
def identity_policy() -> IdentityPolicy:
    return IdentityPolicy(
        max_customers_per_identifier={"email": 2},
        max_identifiers_per_customer=3,
        blocked_values={"email": ["placeholder@shop.test"]},
    )


async def test_guardrails_raise_review_items_instead_of_merging(identity) -> None:  # type: ignore[no-untyped-def]
    c1 = (await _resolve(identity, inbound("sms", identifier("phone", "+15550100001")))).customer_id
    c2 = (await _resolve(identity, inbound("sms", identifier("phone", "+15550100002")))).customer_id
    c3 = (await _resolve(identity, inbound("sms", identifier("phone", "+15550100003")))).customer_id
    # A shared mailbox: it may join two customers (the limit), not a third.
    await _resolve(
        identity,
        inbound(
            "email", identifier("email", "info@shop.test"), identifier("phone", "+15550100001")
        ),
    )
    joined = await _resolve(
        identity,
        inbound(
            "email", identifier("email", "info@shop.test"), identifier("phone", "+15550100002")
        ),
    )
    assert joined.merged_customer_ids == (c2,)
    held = await _resolve(
        identity,
        inbound(
            "email", identifier("email", "info@shop.test"), identifier("phone", "+15550100003")
        ),
    )

    assert held.merged_customer_ids == ()
    assert held.customer_id == c1  # the sender's (first identifier's) customer
    assert len(held.review_ids) == 1
    reviews = await identity.wait(
        "identity.reviews", MergeReview, lambda items: len(items) == 1, "a merge review"
    )
    assert reviews[0].guardrail == "max_customers_per_identifier"
    assert set(reviews[0].customer_ids) == {c1, c3}
    assert "email:info@shop.test would join 3 customers" in reviews[0].reason
    still_separate = await identity.store.customer("default", c3)
    assert still_separate is not None and still_separate.status == "active"
    assert [r.review_id for r in await identity.operations.open_reviews()] == list(held.review_ids)

    # A blocked placeholder value is never used to link anybody.
    blocked = await _resolve(
        identity,
        inbound(
            "webform",
            identifier("email", "placeholder@shop.test"),
            identifier("phone", "+15550100003"),
        ),
    )
    assert blocked.customer_id == c3
    assert [r.reason for r in blocked.rejected_identifiers] == ["blocked value"]

    # Per-customer identifier limit: c1 now holds 2 phones + info@ (3, the limit).
    c4 = (await _resolve(identity, inbound("sms", identifier("phone", "+15550100004")))).customer_id
    too_big = await _resolve(
        identity,
        inbound(
            "webchat", identifier("phone", "+15550100004"), identifier("phone", "+15550100001")
        ),
    )
    assert too_big.customer_id == c4 and too_big.merged_customer_ids == ()
    reviews = await identity.wait(
        "identity.reviews", MergeReview, lambda items: len(items) == 2, "a second review"
    )
    assert reviews[1].guardrail == "max_identifiers_per_customer"
    assert len(await identity.operations.open_reviews()) == 2
    assert (await identity.store.customer("default", c4)).status == "active"  # type: ignore[union-attr]


async def test_malformed_identifiers_never_crash_the_worker(identity) -> None:  # type: ignore[no-untyped-def]
    partly_valid = await _resolve(
        identity,
        inbound(
            "webform", identifier("phone", "call me maybe"), identifier("email", " Bo@Example.org")
        ),
    )
    assert [i.address for i in partly_valid.identifiers] == ["email:bo@example.org"]
    assert [r.kind for r in partly_valid.rejected_identifiers] == ["phone"]
    assert "not a phone number" in partly_valid.rejected_identifiers[0].reason

    hopeless = inbound(
        "webchat",
        identifier("email", ""),
        identifier("social_handle", "h" * 10_240, provider="twitter"),
    )
    identity.send(hopeless)
    identity.send_raw(b"{not json", key=b"phone:+15550100009")
    after = await _resolve(identity, inbound("sms", identifier("phone", "+15550100009")))

    letters = await identity.wait(
        "deadletter", DeadLetter, lambda items: len(items) == 2, "two dead letters"
    )
    by_reason = {letter.error_type: letter for letter in letters}
    no_ids = by_reason["NoUsableIdentifier"]
    assert no_ids.stage == "identity"
    assert "empty e-mail address" in no_ids.reason and "longer than 320 characters" in no_ids.reason
    assert no_ids.causation_id == hopeless.event_id
    bad_json = next(letter for letter in letters if letter.error_type != "NoUsableIdentifier")
    assert bad_json.original_value() == b"{not json"
    assert bad_json.reason.startswith("invalid JSON")
    assert after.is_new_customer  # the stream went on


async def test_replaying_an_event_returns_the_same_customer_and_changes_nothing(identity) -> None:  # type: ignore[no-untyped-def]
    event = inbound(
        "email", identifier("email", "cy@example.net"), identifier("phone", "+15550100077")
    )
    first = await _resolve(identity, event)
    before = await identity.store.customer("default", first.customer_id)

    identity.send(event)
    both = await identity.wait(
        "interactions.resolved",
        ResolvedInteraction,
        lambda items: sum(i.causation_id == event.event_id for i in items) == 2,
        "the replayed resolution",
    )
    again = [i for i in both if i.causation_id == event.event_id]

    assert again[0].event_id == again[1].event_id  # consumers dedupe the copy on event_id
    assert again[1].customer_id == first.customer_id
    assert again[1].is_new_customer == first.is_new_customer
    assert await identity.store.customer("default", first.customer_id) == before


async def test_one_redis_round_trip_per_consumed_batch(identity) -> None:  # type: ignore[no-untyped-def]
    warm_up = await _resolve(identity, inbound("sms", identifier("phone", "+15550109999")))
    assert warm_up.is_new_customer  # the script is loaded; from here every call is one EVALSHA

    async def warm_up_counted() -> bool:
        # The worker counts a batch after publishing it: wait for the count, or the warm-up
        # batch would be counted inside the measurement.
        return identity.worker.events_consumed >= 1

    await eventually_async(warm_up_counted, what="the warm-up batch to be counted")
    trips_before = identity.redis.round_trips
    batches_before = identity.worker.batches_processed
    events = [
        inbound(
            "email",
            identifier("email", f"bulk{n}@example.com"),
            identifier("phone", f"+1555011{n % 7:04d}"),
        )
        for n in range(60)
    ]
    for event in events:
        identity.producer.send(
            identity.topic("interactions.inbound"), encode(event), key=event.routing_key.encode()
        )
    identity.producer.flush()
    await identity.wait(
        "interactions.resolved",
        ResolvedInteraction,
        lambda items: {e.event_id for e in events} <= {i.causation_id for i in items},
        "all 60 resolutions",
    )

    consumed_before = 1  # the warm-up event

    async def all_counted() -> bool:
        # Counted after publishing: the last batch's records can be read before its count.
        return identity.worker.events_consumed >= consumed_before + 60

    await eventually_async(all_counted, what="every batch counted")
    batches = identity.worker.batches_processed - batches_before
    trips = identity.redis.round_trips - trips_before
    assert 1 <= batches <= 60
    assert trips == batches, f"{trips} Redis round trips for {batches} batches of 60 events"


async def test_the_same_phone_in_two_tenants_is_two_customers(identity) -> None:  # type: ignore[no-untyped-def]
    acme = await _resolve(
        identity, inbound("sms", identifier("phone", "+15550102345"), tenant="acme")
    )
    globex = await _resolve(
        identity, inbound("sms", identifier("phone", "+15550102345"), tenant="globex")
    )

    assert acme.customer_id != globex.customer_id
    assert acme.is_new_customer and globex.is_new_customer
    assert (acme.tenant, globex.tenant) == ("acme", "globex")
    assert await identity.store.customer("acme", globex.customer_id) is None


async def test_a_batch_failing_in_a_way_no_retry_handles_is_dead_lettered_and_the_stream_goes_on(
    identity, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A bug (here: the store raising for one tenant) must not crash the agent — faust would
    stop consuming while the process lives on. The batch's records land on the dead-letter topic
    with the stage and the error, and the next event is resolved as usual."""
    original = identity.store.resolve_batch

    async def exploding(tenant, requests):  # type: ignore[no-untyped-def]
        if tenant == "kaboom":
            raise RuntimeError("a bug no retry handles")
        return await original(tenant, requests)

    monkeypatch.setattr(identity.store, "resolve_batch", exploding)
    poison = inbound("sms", identifier("phone", "+15550109999"), tenant="kaboom")
    identity.send(poison)
    [letter] = await identity.wait(
        "deadletter", DeadLetter, lambda items: len(items) == 1, "the failed batch's dead letter"
    )
    assert (letter.stage, letter.error_type) == ("identity", "Unexpected.RuntimeError")
    assert "a bug no retry handles" in letter.reason
    assert letter.original_value() == encode(poison)
    assert letter.source_topic == identity.topic("interactions.inbound")

    after = await _resolve(identity, inbound("sms", identifier("phone", "+15550108888")))
    assert after.is_new_customer
