"""The bench's sample of case documents reads the cases the case script wrote, on real Redis,
and only those under the run's own key prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from omnirouter.bench.cases import sample_cases
from omnirouter.devstack import StackAddresses
from omnirouter.events import ResolvedInteraction
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound
from support.stack import async_redis

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SETTINGS = CaseSettings()


@pytest.fixture
async def stores(
    stack: StackAddresses, redis_prefix: str
) -> AsyncIterator[tuple[RedisCaseStore, RedisCaseStore]]:
    """The run's own store, and another under a prefix that starts the same."""
    client = async_redis(stack.redis_url)
    yield (
        RedisCaseStore(client, key_prefix=redis_prefix, settings=SETTINGS),
        RedisCaseStore(client, key_prefix=f"{redis_prefix}0", settings=SETTINGS),
    )
    await client.aclose()


async def contacts(store: RedisCaseStore, customer: str, count: int) -> None:
    """``count`` e-mails from ``customer``, a minute apart, applied as the case worker does."""
    email = identifier("email", f"{customer}@example.com")
    for n in range(count):
        at = T0 + timedelta(minutes=n)
        resolved = ResolvedInteraction(
            occurred_at=at,
            customer_id=customer,
            interaction=inbound("email", email, at=at),
            is_new_customer=n == 0,
            identifiers=(email,),
        )
        entry = inbound_entry(resolved, SETTINGS.intent_rules)
        update = (await store.apply({("default", customer): [entry]}))[("default", customer)]
        assert not update.outcomes[0].error


async def test_the_sample_counts_each_cases_interactions_under_its_prefix_only(
    stack: StackAddresses,
    redis_prefix: str,
    stores: tuple[RedisCaseStore, RedisCaseStore],
) -> None:
    own, other = stores
    await contacts(own, "cus_sample_one", 1)
    await contacts(own, "cus_sample_three", 3)
    await contacts(other, "cus_sample_elsewhere", 8)  # another run's: not counted

    shape = sample_cases(stack.redis_url, redis_prefix)
    assert shape["cases"] == 2
    assert shape["interactions_per_case"] == 2.0
    assert shape["interactions_max"] == 3
    assert shape["document_bytes_max"] > shape["document_bytes"] > 0
    # At most the customers asked for: one here, either of the two.
    one = sample_cases(stack.redis_url, redis_prefix, customers=1)
    assert one["cases"] == 1 and one["interactions_max"] in (1, 3)
