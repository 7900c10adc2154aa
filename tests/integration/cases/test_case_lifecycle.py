"""The case lifecycle on real Redis: open, continue, reopen, thread, reply, transfer, resolve."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    CaseStatus,
    Channel,
    Direction,
    InteractionEvent,
    ProviderRefs,
    ResolvedInteraction,
)
from omnirouter.pipeline.cases.entries import inbound_entry, outbound_entry, status_entry
from omnirouter.pipeline.cases.operations import describe_update
from omnirouter.pipeline.cases.snapshot import case_snapshot
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound
from support.stack import REDIS_MASTERS, async_redis

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CUSTOMER = "cus_lifecycle"


@pytest.fixture
async def store(stack: StackAddresses, redis_prefix: str) -> AsyncIterator[RedisCaseStore]:
    client = async_redis(stack.redis_url)
    settings = CaseSettings(reopen_window_s=3600, timeline_max_entries=20)
    yield RedisCaseStore(client, key_prefix=redis_prefix, settings=settings)
    await client.aclose()


def message(channel: str, text: str, at: datetime, **provider: Any) -> ResolvedInteraction:
    event = inbound(channel, identifier("email", "lee@example.com"), text=text, at=at)
    if provider:
        event = event.model_copy(update={"provider": ProviderRefs(provider="smtp", **provider)})
    return ResolvedInteraction(
        occurred_at=at,
        customer_id=CUSTOMER,
        interaction=event,
        is_new_customer=False,
        identifiers=(identifier("email", "lee@example.com"),),
    )


def reply(text: str, at: datetime, agent: str = "agent-a", **provider: Any) -> InteractionEvent:
    return InteractionEvent(
        occurred_at=at,
        channel=Channel.EMAIL,
        direction=Direction.OUTBOUND,
        identifiers=(identifier("email", "lee@example.com"),),
        customer_id=CUSTOMER,
        agent_id=agent or None,
        content={"text": text},
        provider=ProviderRefs(provider="smtp", **provider),
    )


async def apply(store: RedisCaseStore, *entries: dict[str, Any]) -> Any:
    updates = await store.apply({("default", CUSTOMER): list(entries)})
    return updates[("default", CUSTOMER)]


def status(to: CaseStatus | None, at: datetime, case_id: str, **kw: Any) -> dict[str, Any]:
    return status_entry(
        uuid.uuid4(), at, case_id=case_id, to=to, reason=kw.pop("reason", "test"), **kw
    )


RULES = CaseSettings().intent_rules


async def test_a_message_soon_after_resolution_reopens_the_case(store) -> None:  # type: ignore[no-untyped-def]
    first = await apply(store, inbound_entry(message("email", "Refund please", T0), RULES))
    case_id = first.outcomes[0].opened
    await apply(store, status(CaseStatus.RESOLVED, T0 + timedelta(minutes=5), case_id))
    again = await apply(
        store, inbound_entry(message("sms", "It came back", T0 + timedelta(minutes=30)), RULES)
    )

    assert again.outcomes[0].case_id == case_id
    assert again.outcomes[0].reopened == case_id
    case = case_snapshot(again.cases[case_id])
    assert case.status is CaseStatus.NEW
    assert case.reopen_count == 1
    assert [(h.from_status, h.to_status) for h in case.status_history] == [
        (None, CaseStatus.NEW),
        (CaseStatus.NEW, CaseStatus.RESOLVED),
        (CaseStatus.RESOLVED, CaseStatus.NEW),
    ]


async def test_after_the_reopen_window_the_old_case_closes_and_a_new_one_opens(store) -> None:  # type: ignore[no-untyped-def]
    first = await apply(store, inbound_entry(message("email", "Hi", T0), RULES))
    old = first.outcomes[0].opened
    await apply(store, status(CaseStatus.RESOLVED, T0 + timedelta(minutes=1), old))
    later = await apply(
        store, inbound_entry(message("email", "New problem", T0 + timedelta(hours=3)), RULES)
    )

    new = later.outcomes[0].opened
    assert new and new != old
    assert case_snapshot(later.cases[old]).status is CaseStatus.CLOSED
    assert later.cases[new]["related_case_id"] == old


async def test_a_replay_re_announces_every_case_the_entry_moved(store) -> None:  # type: ignore[no-untyped-def]
    """The entry that closed an old case and opened a new one, applied again (a worker crashed
    before publishing): the same case events, the old case's closing included."""
    first = await apply(store, inbound_entry(message("email", "Hi", T0), RULES))
    old = first.outcomes[0].opened
    await apply(store, status(CaseStatus.RESOLVED, T0 + timedelta(minutes=1), old))
    entry = inbound_entry(message("email", "New problem", T0 + timedelta(hours=3)), RULES)
    live = await apply(store, entry)
    replayed = await apply(store, entry)

    def announced(update: Any) -> list[tuple[str, str, str]]:
        events = describe_update("default", CUSTOMER, update)
        return [(e.event_id.hex, e.kind.value, e.case.case_id) for e in events]

    assert replayed.outcomes[0].replayed
    assert {case_id for _, _, case_id in announced(live)} == {old, live.outcomes[0].opened}
    assert announced(replayed) == announced(live)


async def test_an_email_reply_threads_into_its_case_by_in_reply_to(store) -> None:  # type: ignore[no-untyped-def]
    first = await apply(
        store, inbound_entry(message("email", "Order 9", T0, message_id="<m1@x>"), RULES)
    )
    case_id = first.outcomes[0].opened
    await apply(
        store,
        outbound_entry(reply("We are on it", T0 + timedelta(minutes=2), message_id="<r1@us>")),
    )
    await apply(store, status(CaseStatus.RESOLVED, T0 + timedelta(minutes=3), case_id))
    # A reply to our answer, quoting it: In-Reply-To names our message, References the thread.
    threaded = message(
        "email",
        "Thanks, but...",
        T0 + timedelta(minutes=20),
        message_id="<m2@x>",
        in_reply_to="<r1@us>",
        references=("<m1@x>", "<r1@us>"),
    )
    update = await apply(store, inbound_entry(threaded, RULES))

    assert update.outcomes[0].case_id == case_id
    assert update.outcomes[0].reopened == case_id


async def test_replies_wait_on_the_customer_and_record_first_response_and_transfers(store) -> None:  # type: ignore[no-untyped-def]
    first = await apply(store, inbound_entry(message("webchat", "Help", T0), RULES))
    case_id = first.outcomes[0].opened
    await apply(
        store, status(CaseStatus.ASSIGNED, T0 + timedelta(seconds=30), case_id, agent_id="agent-a")
    )
    await apply(store, outbound_entry(reply("Hello!", T0 + timedelta(seconds=90))))
    waiting = await apply(
        store, status(None, T0 + timedelta(minutes=2), case_id, agent_id="agent-b")
    )
    back = await apply(
        store, inbound_entry(message("webchat", "Still there?", T0 + timedelta(minutes=5)), RULES)
    )
    done = await apply(store, status(CaseStatus.RESOLVED, T0 + timedelta(minutes=10), case_id))

    assert case_snapshot(waiting.cases[case_id]).status is CaseStatus.WAITING_ON_CUSTOMER
    assert case_snapshot(back.cases[case_id]).status is CaseStatus.ASSIGNED  # back to its agent
    case = case_snapshot(done.cases[case_id])
    assert case.effort is not None
    assert case.effort.time_to_first_response_s == 90
    assert case.effort.time_to_resolution_s == 600
    assert case.effort.transfers == 1
    assert case.agents == ("agent-a", "agent-b")
    assert case.assigned_agent_id == "agent-b"
    timeline = (await store.read_customer("default", CUSTOMER, timeline=50))["timeline"]
    assert any(t.get("system_type") == "reassignment" for t in timeline)
    assert [t["direction"] for t in timeline if t["kind"] != "system"] == [
        "inbound",
        "outbound",
        "inbound",
    ]


async def test_a_transition_the_lifecycle_forbids_is_refused(store) -> None:  # type: ignore[no-untyped-def]
    first = await apply(store, inbound_entry(message("sms", "Hi", T0), RULES))
    case_id = first.outcomes[0].opened
    closed = await apply(store, status(CaseStatus.CLOSED, T0 + timedelta(minutes=1), case_id))
    refused = await apply(store, status(CaseStatus.ASSIGNED, T0 + timedelta(minutes=2), case_id))

    assert closed.outcomes[0].error == ""
    assert refused.outcomes[0].error == f"case {case_id} cannot go from closed to assigned"


async def test_the_timeline_is_capped_and_replays_never_duplicate(store) -> None:  # type: ignore[no-untyped-def]
    entries = [
        inbound_entry(message("sms", f"message {n}", T0 + timedelta(seconds=n)), RULES)
        for n in range(30)
    ]
    await apply(store, *entries)
    again = await apply(store, *entries)

    assert all(o.replayed for o in again.outcomes)
    timeline = (await store.read_customer("default", CUSTOMER, timeline=100))["timeline"]
    assert len(timeline) == 20
    texts = [t["text"] for t in timeline if t["kind"] == "message"]
    assert texts == [f"message {n}" for n in range(30 - len(texts), 30)]
    case = case_snapshot(again.cases[again.outcomes[0].case_id])
    assert case.interaction_count == 30


async def test_a_batch_for_many_customers_is_one_round_trip(
    stack: StackAddresses, redis_prefix: str
) -> None:
    from support.redis_trips import CountingConnection, counting_client

    client = counting_client(stack.redis_url)
    store = RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings())
    # Warmed up on the customers measured, so that on a cluster the client is connected to
    # every master holding one (opening a connection sends commands of its own) and each has
    # the script: neither is what this test counts.
    warm_up = inbound_entry(message("sms", "warm-up", T0 - timedelta(minutes=1)), RULES)
    await store.apply({("default", f"cus_{n}"): [warm_up] for n in range(25)})
    work = {
        ("default", f"cus_{n}"): [
            inbound_entry(message("sms", f"hello {n}.{k}", T0 + timedelta(seconds=k)), RULES)
            for k in range(3)
        ]
        for n in range(25)
    }
    before = CountingConnection.sends
    updates = await store.apply(work)
    trips = CountingConnection.sends - before
    await client.aclose()

    assert len(updates) == 25
    assert all(len(u.outcomes) == 3 and not u.folded_into for u in updates.values())
    # One pipeline: a single round trip to each Redis server holding the customers.
    assert 1 <= trips <= REDIS_MASTERS, f"{trips} round trips for 75 events of 25 customers"


async def test_chains_of_folds_are_followed_together_a_round_trip_per_link(
    stack: StackAddresses, redis_prefix: str
) -> None:
    from support.redis_trips import CountingConnection, counting_client

    client = counting_client(stack.redis_url)
    store = RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings())
    # a was merged into b and b into c (a chain of two links); x into y; k never merged.
    for absorbed, survivor in (("a", "b"), ("b", "c"), ("x", "y")):
        await store.export("default", f"cus_{absorbed}", f"cus_{survivor}")
    starts = {("default", f"cus_{name}"): f"cus_{name}" for name in ("a", "x", "k")}
    before = CountingConnection.sends
    current = await store.current_customers(starts)
    trips = CountingConnection.sends - before
    one = await store.current_customer("default", "cus_b")
    await client.aclose()

    assert current == {
        ("default", "cus_a"): "cus_c",
        ("default", "cus_x"): "cus_y",
        ("default", "cus_k"): "cus_k",
    }
    assert one == "cus_c"
    # a, x and k read together; then b and y; then c: three rounds, whatever the customers.
    assert 3 <= trips <= 3 * REDIS_MASTERS, f"{trips} round trips for chains of 2, 1 and 0 links"


async def test_a_delivery_report_is_a_system_entry_not_a_response(store) -> None:  # type: ignore[no-untyped-def]
    first = await apply(store, inbound_entry(message("sms", "Hi", T0), RULES))
    case_id = first.outcomes[0].opened
    report = reply("Delivered by sms", T0 + timedelta(seconds=5), agent="")
    report = report.model_copy(update={"kind": "delivery_status", "case_id": case_id})
    update = await apply(store, outbound_entry(report))

    case = case_snapshot(update.cases[case_id])
    assert case.effort is not None
    assert case.effort.first_response_at is None
    assert case.status is CaseStatus.NEW
    timeline = (await store.read_customer("default", CUSTOMER, timeline=10))["timeline"]
    assert [(t["kind"], t.get("system_type"), t["text"]) for t in timeline][-1] == (
        "system",
        "delivery",
        "Delivered by sms",
    )
