"""The stores' pipelined scripts keep working on a Redis that lost its script cache (a restart,
a failover to a replica that never loaded them), on a real redis-server of the test's own (its
cache is flushed, which would disturb other tests sharing a server): each call runs exactly
once, and an error one call gets is raised, not mistaken for a lost script; an erasure, whose
scripts run both ways (pipelined and one by one), still finds and removes its person."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from omnirouter.devstack.redis import start_redis
from omnirouter.events import ResolvedInteraction
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.identity.erasure import CustomerErasure
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore, ResolveRequest
from omnirouter.pipeline.routing.store import RoutingStore
from omnirouter.pipeline.scripts import run_pipelined
from omnirouter.settings import CaseSettings
from support.events import identifier, inbound

pytestmark = pytest.mark.integration

# Counts its runs on its key; refuses (an error reply, as a script's own check would) on "no".
COUNTING = """
if ARGV[1] == 'no' then return redis.error_reply('refused ' .. KEYS[1]) end
return redis.call('INCR', KEYS[1])
"""
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
BASE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "redis.conf"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    """A client of a redis-server of this test's own."""
    server = start_redis(BASE_CONFIG, tmp_path / "redis", timeout_s=30.0, tie_to_parent=True)
    try:
        redis = aioredis.Redis.from_url(server.url)
        try:
            yield redis
        finally:
            await redis.aclose()
    finally:
        server.stop()


async def test_calls_refused_for_a_lost_script_run_once_after_it_is_loaded(
    client: aioredis.Redis,
) -> None:
    script = client.register_script(COUNTING)
    keys = ["runs:{a}", "runs:{b}", "runs:{c}"]
    await client.script_flush()
    replies = await run_pipelined(client, script, [([key], ("yes",)) for key in keys])
    assert replies == [1, 1, 1]
    assert await client.script_exists(script.sha) == [True]
    assert [int(await client.get(key)) for key in keys] == [1, 1, 1]


async def test_an_error_a_call_gets_is_raised_after_the_others_ran(
    client: aioredis.Redis,
) -> None:
    script = client.register_script(COUNTING)
    ok, refused, also_ok = (f"runs:{{{name}}}" for name in "xyz")
    with pytest.raises(ResponseError, match="refused"):
        await run_pipelined(
            client, script, [([ok], ("yes",)), ([refused], ("no",)), ([also_ok], ("yes",))]
        )
    assert [await client.get(key) for key in (ok, refused, also_ok)] == [b"1", None, b"1"]


async def test_the_case_and_routing_stores_load_their_scripts_again(
    client: aioredis.Redis,
) -> None:
    cases = RedisCaseStore(client, key_prefix="omni", settings=CaseSettings())
    routing = RoutingStore(client, key_prefix="omni")
    email = identifier("email", "lost.cache@example.com")
    resolved = ResolvedInteraction(
        occurred_at=T0,
        customer_id="cus_lost_cache",
        interaction=inbound("email", email, at=T0),
        is_new_customer=True,
        identifiers=(email,),
    )
    entry = inbound_entry(resolved, CaseSettings().intent_rules)

    await client.script_flush()
    update = (await cases.apply({("default", "cus_lost_cache"): [entry]}))[
        ("default", "cus_lost_cache")
    ]
    assert update.outcomes[0].opened

    await client.script_flush()
    (exported,) = await cases.export_many([("default", "cus_lost_cache", "cus_survivor")])
    assert exported["open_case"] == update.outcomes[0].opened

    await client.script_flush()
    released = await routing.release_many("default", ["case_never_routed"], T0)
    assert [r["agent"] for r in released] == [""]  # nobody held it


class _Announcements:
    """Records the erasure's announcement; Kafka's part is tested with the erasure itself."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))


async def test_an_erasure_on_a_redis_that_lost_its_scripts_finds_and_removes_the_person(
    client: aioredis.Redis,
) -> None:
    identity = RedisIdentityStore(client, key_prefix="omni", policy=IdentityPolicy())
    cases = RedisCaseStore(client, key_prefix="omni", settings=CaseSettings())
    email = identifier("email", "forget.me@example.com")
    event = inbound("email", email, at=T0)
    (resolution,) = await identity.resolve_batch(
        "default", [ResolveRequest(event.event_id, (email,))]
    )
    customer = resolution.customer_id
    resolved = ResolvedInteraction(
        occurred_at=T0,
        customer_id=customer,
        interaction=event,
        is_new_customer=True,
        identifiers=(email,),
    )
    entry = inbound_entry(resolved, CaseSettings().intent_rules)
    update = (await cases.apply({("default", customer): [entry]}))[("default", customer)]
    announcements = _Announcements()
    erasure = CustomerErasure(
        client, key_prefix="omni", publisher=announcements, topic_prefix="omni"
    )

    # Planned once, so all three scripts are in the cache before it loses them: the flush then
    # takes away scripts Redis had, as a restart or a failover to a replica would.
    assert await erasure.plan(customer) is not None
    await client.script_flush()
    outcome = await erasure.erase(customer)

    assert outcome is not None
    assert outcome.report.customer_ids == (customer,)
    assert outcome.report.case_ids == (update.outcomes[0].opened,)
    assert outcome.report.identifiers == 1
    assert [key for _, key, _ in announcements.sent] == [customer]
    assert await erasure.plan(customer) is None  # nobody left to find
    left = await cases.read_customer("default", customer, timeline=10)
    assert (left["cases"], left["timeline"], left["open_case"]) == ({}, [], None)
    assert (left["profile"], left["agents"]) == ({}, [])  # the profile held personal data
