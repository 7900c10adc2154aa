"""A customer's timeline, profile and the rest expire ``timeline_ttl_days`` after their last
activity (up to 1 % earlier), on real Redis; the state and the cases never do. The expiry is set
again only once it has run down, so a busy customer's every event does not write it again (each
EXPIRE goes to the AOF and to replicas)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from omnirouter.devstack import StackAddresses
from omnirouter.events import ResolvedInteraction
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound
from support.stack import async_redis

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SETTINGS = CaseSettings(timeline_ttl_days=100)
TTL_S = 100 * 86_400


@pytest.fixture
async def store(stack: StackAddresses, redis_prefix: str) -> AsyncIterator[RedisCaseStore]:
    client = async_redis(stack.redis_url)
    yield RedisCaseStore(client, key_prefix=redis_prefix, settings=SETTINGS)
    await client.aclose()


async def contact(store: RedisCaseStore, customer: str, channel: str, at: datetime) -> None:
    """The customer writes on ``channel`` at ``at``; applied as the case worker applies it."""
    email = identifier("email", f"{customer}@example.com")
    resolved = ResolvedInteraction(
        occurred_at=at,
        customer_id=customer,
        interaction=inbound(channel, email, at=at),
        is_new_customer=False,
        identifiers=(email,),
    )
    entry = inbound_entry(resolved, SETTINGS.intent_rules)
    update = (await store.apply({("default", customer): [entry]}))[("default", customer)]
    assert not update.outcomes[0].error


async def expiring_keys(store: RedisCaseStore, customer: str) -> dict[str, int]:
    """Each existing key of the customer's with its time to live (s; -1: none)."""
    keys = store.keys("default", customer).script_keys()
    ttls = [await store.client.ttl(key) for key in keys]
    return {key: ttl for key, ttl in zip(keys, ttls, strict=True) if ttl != -2}


async def test_every_key_but_state_and_cases_expires_after_the_setting(
    store: RedisCaseStore,
) -> None:
    await contact(store, "cus_expiry_first", "email", T0)
    keys = store.keys("default", "cus_expiry_first")
    ttls = await expiring_keys(store, "cus_expiry_first")
    assert ttls.pop(keys.state) == -1
    assert ttls.pop(keys.cases) == -1
    # The timeline, what was seen, the outcomes, the profile and the contacts at least.
    assert {keys.timeline, keys.seen, keys.outcomes, keys.profile, keys.contacts} <= set(ttls)
    assert all(TTL_S - 60 <= ttl <= TTL_S for ttl in ttls.values()), ttls


async def test_an_expiry_that_has_hardly_run_down_is_left_as_it_is(
    store: RedisCaseStore,
) -> None:
    customer = "cus_expiry_kept"
    await contact(store, customer, "email", T0)
    timeline = store.keys("default", customer).timeline
    # Less than a hundredth of it gone: the next event does not set it again.
    await store.client.expire(timeline, TTL_S - TTL_S // 200)
    await contact(store, customer, "sms", T0 + timedelta(minutes=1))
    left = TTL_S - TTL_S // 200
    assert left - 60 <= await store.client.ttl(timeline) <= left


@pytest.mark.parametrize(
    ("left_s", "why"),
    [
        (TTL_S - TTL_S // 50, "run down by more than a hundredth"),
        (TTL_S * 2, "longer than the setting now allows (it was shortened)"),
        (None, "none at all"),
    ],
)
async def test_an_expiry_is_set_again_on_the_next_event_when(
    store: RedisCaseStore, left_s: int | None, why: str
) -> None:
    customer = f"cus_expiry_reset_{left_s}"
    await contact(store, customer, "email", T0)
    timeline = store.keys("default", customer).timeline
    if left_s is None:
        await store.client.persist(timeline)
    else:
        await store.client.expire(timeline, left_s)
    await contact(store, customer, "sms", T0 + timedelta(minutes=1))
    assert TTL_S - 60 <= await store.client.ttl(timeline) <= TTL_S, why
