"""The case and identity scripts' batched reads and writes, on real Redis: one call that holds
the same event twice, long contact trails, and documents stored before the trail was compact."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.exceptions

from omnirouter.devstack import StackAddresses
from omnirouter.events import CustomerMerged, ResolvedInteraction
from omnirouter.pipeline.cases.entries import fold_entry, inbound_entry, new_case_id
from omnirouter.pipeline.cases.snapshot import case_snapshot
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.identity.normalize import normalize_identifiers
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore, ResolveRequest
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound
from support.stack import async_redis

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULES = CaseSettings().intent_rules
TRAIL_MAX = 200  # apply.lua's cap on a case's contact trail


@pytest.fixture
async def store(stack: StackAddresses, redis_prefix: str) -> AsyncIterator[RedisCaseStore]:
    client = async_redis(stack.redis_url)
    yield RedisCaseStore(client, key_prefix=redis_prefix, settings=CaseSettings())
    await client.aclose()


def message(customer: str, channel: str, at: datetime, text: str = "hello") -> dict[str, Any]:
    event = inbound(channel, identifier("email", f"{customer}@example.com"), text=text, at=at)
    resolved = ResolvedInteraction(
        occurred_at=at,
        customer_id=customer,
        interaction=event,
        is_new_customer=False,
        identifiers=(identifier("email", f"{customer}@example.com"),),
    )
    return inbound_entry(resolved, RULES)


async def apply(store: RedisCaseStore, customer: str, *entries: dict[str, Any]) -> Any:
    return (await store.apply({("default", customer): list(entries)}))[("default", customer)]


async def stored_case(store: RedisCaseStore, customer: str, case_id: str) -> dict[str, Any]:
    raw = await store.client.hget(store.keys("default", customer).cases, case_id)
    assert raw is not None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


async def test_an_event_twice_in_one_call_is_applied_once(store) -> None:  # type: ignore[no-untyped-def]
    first = message("cus_twice", "sms", T0)
    update = await apply(store, "cus_twice", first, dict(first))

    assert [o.replayed for o in update.outcomes] == [False, True]
    assert update.outcomes[0].case_id == update.outcomes[1].case_id
    snapshot = case_snapshot(update.cases[update.outcomes[0].case_id])
    assert snapshot.interaction_count == 1
    timeline = (await store.read_customer("default", "cus_twice", timeline=10))["timeline"]
    assert [t["entry_id"] for t in timeline if t["kind"] == "message"] == [first["event_id"]]


async def test_a_long_trail_keeps_its_newest_contacts_and_counts_every_switch(store) -> None:  # type: ignore[no-untyped-def]
    channels = ["sms", "email"]
    entries = [message("cus_long", channels[n % 2], T0 + timedelta(seconds=n)) for n in range(205)]
    update = await apply(store, "cus_long", *entries)

    case_id = update.outcomes[0].case_id
    effort = case_snapshot(update.cases[case_id]).effort
    assert effort is not None
    assert (effort.contacts, effort.channel_switches) == (205, 204)
    trail = (await stored_case(store, "cus_long", case_id))["effort"]
    steps = trail["trail"].split(",")
    assert trail["trail_n"] == len(steps) == TRAIL_MAX
    # The oldest five went; the newest is the last message.
    assert steps[0] == f"{entries[5]['at']}:{entries[5]['channel']}"
    assert steps[-1] == f"{entries[-1]['at']}:{entries[-1]['channel']}"


async def test_a_case_stored_with_the_old_array_trail_goes_on_and_folds(store) -> None:  # type: ignore[no-untyped-def]
    # The survivor's case, as a version that kept the trail as an array of [at, channel] left it.
    opened = await apply(store, "cus_keep", message("cus_keep", "sms", T0))
    case_id = opened.outcomes[0].case_id
    doc = await stored_case(store, "cus_keep", case_id)
    doc["effort"]["trail"] = [[doc["opened_at"], "sms"]]
    del doc["effort"]["trail_n"]
    await store.client.hset(store.keys("default", "cus_keep").cases, case_id, orjson.dumps(doc))
    # The absorbed customer's case, also stored the old way.
    gone = await apply(store, "cus_gone", message("cus_gone", "email", T0 + timedelta(seconds=1)))
    gone_case = gone.outcomes[0].case_id
    gone_doc = await stored_case(store, "cus_gone", gone_case)
    gone_doc["effort"]["trail"] = [[gone_doc["opened_at"], "email"]]
    del gone_doc["effort"]["trail_n"]
    await store.client.hset(
        store.keys("default", "cus_gone").cases, gone_case, orjson.dumps(gone_doc)
    )

    await apply(store, "cus_keep", message("cus_keep", "whatsapp", T0 + timedelta(seconds=2)))
    merged = CustomerMerged(
        occurred_at=T0 + timedelta(seconds=3),
        survivor_id="cus_keep",
        absorbed_id="cus_gone",
        cause="shared identifier",
    )
    export = await store.export("default", "cus_gone", "cus_keep")
    folded = await apply(store, "cus_keep", fold_entry(merged, export))

    effort = case_snapshot(folded.cases[case_id]).effort
    assert effort is not None
    # sms (t0), email (t0+1, the absorbed case's), whatsapp (t0+2): two switches in time order.
    assert (effort.contacts, effort.channel_switches) == (3, 2)
    assert [c.value for c in effort.channels_used] == ["sms", "email", "whatsapp"]
    stored = (await stored_case(store, "cus_keep", case_id))["effort"]
    assert stored["trail_n"] == 3
    assert [s.split(":")[1] for s in stored["trail"].split(",")] == ["sms", "email", "whatsapp"]


async def test_identity_resolves_an_event_twice_in_one_batch_once(
    stack: StackAddresses, redis_prefix: str
) -> None:
    client = async_redis(stack.redis_url)
    policy = IdentityPolicy()
    identity = RedisIdentityStore(client, key_prefix=redis_prefix, policy=policy)
    ids = normalize_identifiers((identifier("email", "twice@example.com"),), policy).usable
    request = ResolveRequest(uuid.uuid4(), ids)
    try:
        first, second = await identity.resolve_batch("default", [request, request])
        (later,) = await identity.resolve_batch("default", [request])
    finally:
        await client.aclose()

    assert (first.replayed, second.replayed, later.replayed) == (False, True, True)
    assert first.is_new
    assert first.customer_id == second.customer_id == later.customer_id


async def test_a_fold_failing_half_way_leaves_the_cases_before_it_stored(
    store: RedisCaseStore,
) -> None:
    """Redis keeps a script's writes up to an error: the entries a failed fold followed in the
    same call must be stored whole (case included), or their retry would find outcomes and a
    timeline pointing at a case that does not exist."""
    gone = await apply(store, "cus_gone", message("cus_gone", "email", T0))
    gone_case = gone.outcomes[0].case_id
    export = await store.export("default", "cus_gone", "cus_keep")
    broken = orjson.loads(export["cases"][gone_case])
    del broken["effort"]  # a document the fold cannot merge: the script stops there
    export["cases"][gone_case] = orjson.dumps(broken).decode()
    merged = CustomerMerged(
        occurred_at=T0 + timedelta(seconds=2),
        survivor_id="cus_keep",
        absorbed_id="cus_gone",
        cause="shared identifier",
    )
    first = message("cus_keep", "sms", T0 + timedelta(seconds=1))

    with pytest.raises(redis.exceptions.ResponseError):
        await apply(store, "cus_keep", first, fold_entry(merged, export))

    opened = new_case_id(uuid.UUID(first["event_id"]), "cus_keep")
    assert (await stored_case(store, "cus_keep", opened))["status"] == "new"
    again = await apply(store, "cus_keep", first)
    assert again.outcomes[0].replayed
    assert opened in again.cases
