"""Concurrent resolvers on real Redis: customers are exactly the identifier graph's components."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnirouter.devstack import StackAddresses
from omnirouter.events import Identifier, IdentifierKind
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore, ResolveRequest
from support.stack import async_redis

pytestmark = pytest.mark.integration

# A small universe makes collisions (and so merges) frequent.
UNIVERSE = [Identifier(kind=IdentifierKind.PHONE, value=f"+1555010{n:04d}") for n in range(6)] + [
    Identifier(kind=IdentifierKind.EMAIL, value=f"p{n}@example.com") for n in range(6)
]

event_sets = st.lists(
    st.sets(st.integers(0, len(UNIVERSE) - 1), min_size=1, max_size=3), min_size=1, max_size=25
)
schedules = st.tuples(
    event_sets, st.lists(st.integers(0, 2), min_size=25, max_size=25), st.integers(1, 4)
)


def _components(events: list[set[int]]) -> dict[int, int]:
    parent = {i: i for e in events for i in e}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for e in events:
        first, *rest = sorted(e)
        for other in rest:
            parent[find(other)] = find(first)
    return {i: find(i) for i in parent}


async def _resolver(
    store: RedisIdentityStore, work: list[tuple[uuid.UUID, set[int]]], batch: int
) -> dict[uuid.UUID, str]:
    seen: dict[uuid.UUID, str] = {}
    for start in range(0, len(work), batch):
        chunk = work[start : start + batch]
        requests = [
            ResolveRequest(eid, tuple(UNIVERSE[i] for i in sorted(ids))) for eid, ids in chunk
        ]
        for (eid, _), resolution in zip(
            chunk, await store.resolve_batch("default", requests), strict=True
        ):
            seen[eid] = resolution.customer_id
    return seen


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=schedules)
def test_customers_equal_connected_components_under_concurrent_resolvers(
    stack: StackAddresses, schedule: tuple[list[set[int]], list[int], int]
) -> None:
    events, assignment, batch = schedule
    work: list[list[tuple[uuid.UUID, set[int]]]] = [[], [], []]
    for index, ids in enumerate(events):
        work[assignment[index]].append((uuid.uuid4(), ids))

    async def scenario() -> None:
        prefix = f"test:prop:{uuid.uuid4().hex[:10]}"
        clients = [async_redis(stack.redis_url) for _ in range(3)]
        stores = [
            RedisIdentityStore(c, key_prefix=prefix, policy=IdentityPolicy.unguarded())
            for c in clients
        ]
        try:
            results = await asyncio.gather(
                *(_resolver(s, w, batch) for s, w in zip(stores, work, strict=True))
            )
            components = _components(events)
            owner: dict[int, str] = {}
            for i in components:
                owner_raw = await clients[0].hget(
                    stores[0].keys("default").identifier_owner, UNIVERSE[i].address
                )
                assert owner_raw is not None, f"{UNIVERSE[i].address} has no customer"
                owner[i] = owner_raw.decode()
            # Same component <=> same customer, for every pair of identifiers.
            for a in components:
                for b in components:
                    assert (components[a] == components[b]) == (owner[a] == owner[b]), (a, b)
            # Every event's customer, followed through merges, is its component's customer.
            for per_resolver in results:
                for eid, customer_id in per_resolver.items():
                    ids = next(ids for w in work for e, ids in w if e == eid)
                    record = await stores[0].customer("default", customer_id)
                    assert record is not None and record.status == "active"
                    assert record.customer_id == owner[next(iter(ids))]
            active = {owner[i] for i in components}
            assert len(active) == len(set(components.values()))
        finally:
            keys = [k async for k in clients[0].scan_iter(match=f"{{{prefix}*")]
            if keys:
                await clients[0].delete(*keys)
            for c in clients:
                await c.aclose()

    asyncio.run(scenario())
