"""Cases on the real broker and Redis: every channel lands in one case with the whole story."""

from __future__ import annotations

import pytest

from omnirouter.events import (
    CaseEvent,
    CaseStatus,
    Channel,
    CustomerMerged,
    ResolvedInteraction,
    TimelineEntryKind,
)
from support.events import identifier, inbound
from support.redis_state import snapshot_keys
from support.workers import replay_everything

pytestmark = pytest.mark.integration


def _latest_case_event(items: list[CaseEvent], cause) -> CaseEvent | None:  # type: ignore[no-untyped-def]
    mine = [e for e in items if e.cause_event_id == cause]
    return mine[-1] if mine else None


async def _until_case_event_for(pipeline, event) -> CaseEvent:  # type: ignore[no-untyped-def]
    items = await pipeline.wait(
        "cases.events",
        CaseEvent,
        lambda items: any(e.cause_event_id == event.event_id for e in items),
        f"a case event caused by {event.event_id}",
    )
    found = _latest_case_event(items, event.event_id)
    assert found is not None
    return found


async def test_email_then_sms_then_chat_is_one_case_with_the_whole_story(pipeline) -> None:  # type: ignore[no-untyped-def]
    email = inbound(
        "email",
        identifier("email", "ana@example.com"),
        text="Hello,\nMy parcel never arrived. Order 1182.\n\nBest regards,\nAna",
        provider="smtp",
        minutes_ago=30,
    )
    email = email.model_copy(
        update={"content": email.content.model_copy(update={"subject": "Where is my parcel?"})}
    )
    sms = inbound(
        "sms",
        identifier("phone", "+15550102345"),
        text="Still no parcel, any news?",
        minutes_ago=20,
    )
    chat = inbound(
        "webchat",
        identifier("chat_visitor", "v-31"),
        identifier("email", "ana@example.com"),
        identifier("phone", "+1 555 010 2345"),
        text="Third time asking: where is order 1182?",
        minutes_ago=10,
    )
    for event in (email, sms):
        pipeline.send(event)
        await _until_case_event_for(pipeline, event)
    pipeline.send(chat)

    # The chat links the e-mail customer and the SMS customer: identity merges them and the
    # case worker folds the SMS customer's case into the e-mail customer's.
    merged = await pipeline.wait(
        "customers.merged", CustomerMerged, lambda items: len(items) == 1, "the merge"
    )
    survivor, absorbed = merged[0].survivor_id, merged[0].absorbed_id
    folded = await pipeline.wait(
        "cases.events",
        CaseEvent,
        lambda items: (
            any(e.cause_event_id == merged[0].event_id for e in items)
            and any(e.cause_event_id == chat.event_id for e in items)
        ),
        "the fold and the chat message",
    )
    latest = max(
        (e for e in folded if e.case.customer_id == survivor and e.case.status != "closed"),
        key=lambda e: (e.case.interaction_count, e.case.updated_at),
    )
    case = latest.case
    assert case.interaction_count == 3
    messages = [t for t in latest.context.recent_timeline if t.kind is TimelineEntryKind.MESSAGE]
    assert [
        (m.channel, m.text.splitlines()[-1] if m.channel == "email" else m.text) for m in messages
    ] == [
        (Channel.EMAIL, "Ana"),
        (Channel.SMS, "Still no parcel, any news?"),
        (Channel.WEBCHAT, "Third time asking: where is order 1182?"),
    ]
    assert {m.case_id for m in messages} <= {case.case_id, *case.folded_case_ids}

    # The effort record, kept as it happened.
    assert case.effort is not None
    assert case.effort.contacts == 3
    assert set(case.effort.channels_used) == {Channel.EMAIL, Channel.SMS, Channel.WEBCHAT}
    assert case.effort.channel_switches == 2

    # The story so far, in the customer's own words, and intents with their evidence.
    story = latest.context.story_so_far
    assert "My parcel never arrived. Order 1182." in story
    assert "Best regards" not in story
    assert (
        story.index("parcel never arrived")
        < story.index("Still no parcel")
        < story.index("Third time")
    )
    assert {t.tag for t in case.intents} >= {"delivery", "complaint"}
    assert latest.context.repeat_contact is True
    assert latest.context.contacts_last_7_days == 3

    # Folding is recorded on the timeline and in the absorbed case's history.
    merge_notes = [t for t in latest.context.recent_timeline if t.system_type == "merge"]
    assert len(merge_notes) == 1
    assert f"Customer {absorbed} was merged into this customer" in merge_notes[0].text
    assert len(case.folded_case_ids) == 1
    absorbed_case = [e for e in folded if e.case.case_id == case.folded_case_ids[0]][-1].case
    assert absorbed_case.customer_id == survivor
    assert absorbed_case.status is CaseStatus.CLOSED
    raw = await pipeline.cases.read_customer("default", survivor, timeline=50)
    old = raw["cases"][case.folded_case_ids[0]]
    assert old["status"] == CaseStatus.CLOSED
    assert old["history"][-1]["reason"] == f"folded into case {case.case_id}"
    assert raw["open_case"] == case.case_id
    # The absorbed customer's keys now redirect: an event still addressed to them is applied
    # to the survivor.
    assert await pipeline.cases.current_customer("default", absorbed) == survivor


async def test_sms_after_whatsapp_continues_the_open_case(pipeline) -> None:  # type: ignore[no-untyped-def]
    first = inbound(
        "whatsapp",
        identifier("phone", "+15550109001", provider="whatsapp"),
        text="Hi, I need to change my address",
    )
    second = inbound("sms", identifier("phone", "+1 555 010 9001"), text="It is 12 Elm Street")
    pipeline.send(first)
    opened = await _until_case_event_for(pipeline, first)
    pipeline.send(second)
    continued = await _until_case_event_for(pipeline, second)

    assert opened.kind == "opened"
    assert continued.kind == "updated"
    assert continued.case.case_id == opened.case.case_id
    assert continued.case.effort is not None
    assert (continued.case.effort.contacts, continued.case.effort.channel_switches) == (2, 1)


async def test_replaying_the_whole_input_changes_nothing(pipeline, stack) -> None:  # type: ignore[no-untyped-def]
    events = [
        inbound("email", identifier("email", "rae@example.com"), text="My invoice is wrong"),
        inbound("sms", identifier("phone", "+15550107777"), text="I was charged twice"),
        inbound(
            "webform",
            identifier("email", "rae@example.com"),
            identifier("phone", "+15550107777"),
            text="Please refund me",
        ),
        inbound(
            "webchat",
            identifier("chat_visitor", "v-9"),
            identifier("email", "RAE@example.com"),
            text="Any update?",
        ),
    ]
    for event in events:  # one after the other, as a customer writes
        pipeline.send(event)
        await _until_case_event_for(pipeline, event)
    await pipeline.wait(
        "cases.events",
        CaseEvent,
        lambda items: {e.event_id for e in events} <= {i.cause_event_id for i in items},
        "case events for all four messages",
    )
    await pipeline.wait(
        "customers.merged", CustomerMerged, lambda items: len(items) == 1, "the merge"
    )
    await pipeline.wait(
        "cases.events",
        CaseEvent,
        lambda items: any(
            i.kind == "folded" or (i.transition and "folded" in i.transition.reason) for i in items
        ),
        "the fold",
    )
    before = await snapshot_keys(pipeline.cases.client, pipeline.redis_prefix)
    case_ids_before = {
        e.event_id for e in pipeline.reader.decoded(pipeline.topic("cases.events"), CaseEvent)
    }
    resolved_before = len(pipeline.reader.on(pipeline.topic("interactions.resolved")))

    await replay_everything(pipeline)

    after = await snapshot_keys(pipeline.cases.client, pipeline.redis_prefix)
    assert after == before
    await pipeline.reader.poll()
    case_ids_after = {
        e.event_id for e in pipeline.reader.decoded(pipeline.topic("cases.events"), CaseEvent)
    }
    assert case_ids_after == case_ids_before  # re-announced with the same ids, nothing new
    resolved = pipeline.reader.decoded(pipeline.topic("interactions.resolved"), ResolvedInteraction)
    assert len({r.event_id for r in resolved}) == resolved_before
