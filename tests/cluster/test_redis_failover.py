"""A Redis Cluster master fails over while the identity and case workers process a stream:
afterwards every event is exactly once on its customer's timeline, in the order it was sent;
and a master without the scripts (as a promoted replica starts) gets them back.

The master that goes is the one holding the tenant's identity slot, which every event passes
through. Once gracefully (``CLUSTER FAILOVER`` on its replica: no write is lost by Redis) and
once by SIGKILL (the replica takes over after the node timeout; the workers meanwhile see
connection errors and CLUSTERDOWN, which they wait out without committing offsets).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from redis.cluster import key_slot

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.devstack.redis_cluster import RedisClusterStack
from omnirouter.events import DEFAULT_TENANT, encode, topic_spec
from omnirouter.pipeline.scripts import run_pipelined
from omnirouter.redis_keys import CustomerCaseKeys, IdentityKeys
from omnirouter.security import redis_client, redis_sync_client
from omnirouter.settings import RedisSettings
from support.events import identifier, inbound
from support.kafka import create_catalogue
from support.waiting import eventually, eventually_async
from support.workers import start_workers

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

CUSTOMERS = 20
MESSAGES = 30  # per customer
CLUSTER = RedisSettings(cluster=True)
T0 = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
_SEQUENCE = re.compile(r"^message (\d+) from customer (\d+)$")


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterStack]:
    """Six redis-servers (three masters, a replica each) of this module's own, tied to the test
    process. A cluster that cannot start fails the tests; it never skips them."""
    cluster = RedisClusterStack(Path(tmp_path_factory.mktemp("redis-cluster")), tie_to_parent=True)
    try:
        cluster.up()
    except Exception as exc:
        cluster.down()
        pytest.fail(f"the Redis Cluster did not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.down()


def _phone(customer: int) -> str:
    return f"+1555020{customer:04d}"


def _traffic() -> list[tuple[bytes, bytes]]:
    """Every customer's messages, interleaved across customers, each customer's in order."""
    records = []
    for n in range(MESSAGES):
        for c in range(CUSTOMERS):
            event = inbound(
                "sms",
                identifier("phone", _phone(c)),
                text=f"message {n} from customer {c}",
                at=T0 + timedelta(seconds=n),
            )
            records.append((event.routing_key.encode(), encode(event)))
    return records


def _timelines(url: str, redis_prefix: str) -> dict[int, list[int]]:
    """Customer number -> the sequence numbers of the messages on their timeline, in order."""
    client = redis_sync_client(CLUSTER, url)
    try:
        identity = IdentityKeys(redis_prefix, DEFAULT_TENANT)
        found: dict[int, list[int]] = {}
        for c in range(CUSTOMERS):
            owner = client.hget(identity.identifier_owner, f"phone:{_phone(c)}")
            if owner is None:
                continue
            keys = CustomerCaseKeys(redis_prefix, DEFAULT_TENANT, owner.decode())
            sequence = []
            for raw in client.lrange(keys.timeline, 0, -1):
                entry = orjson.loads(raw)
                match = _SEQUENCE.match(entry.get("text") or "")
                if entry.get("kind") == "message" and match:
                    assert int(match.group(2)) == c, f"customer {c} holds {entry['text']!r}"
                    sequence.append(int(match.group(1)))
            found[c] = sequence
        return found
    finally:
        client.close()


@pytest.mark.parametrize("how", ["fail_over", "kill"])
async def test_every_event_once_and_in_order_across_a_master_failover(
    how: str, redis_cluster: RedisClusterStack, stack: StackAddresses, unique_id: str
) -> None:
    url = redis_cluster.up()  # whole again if an earlier test left a node down
    prefix, redis_prefix = f"test.{unique_id}.", f"test:{unique_id}"
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    identity_slot = key_slot(IdentityKeys(redis_prefix, DEFAULT_TENANT).identifier_owner.encode())
    victim = redis_cluster.master_of_slot(identity_slot)

    client = redis_client(CLUSTER, url)
    app, _cases, _identity, case_worker, _ = await start_workers(
        stack,
        app_id=f"failover-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        redis=client,
    )
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="failover-test")
    records = _traffic()
    inbound_topic = topic_spec("interactions.inbound").name(prefix)

    def produce() -> None:
        # One acknowledged send at a time: the stream keeps coming while the master goes.
        for key, value in records:
            producer.send(inbound_topic, value, key=key).get(30)

    sender = threading.Thread(target=produce, name="failover-traffic")
    try:
        sender.start()

        async def under_way() -> bool:
            return case_worker.events_consumed >= CUSTOMERS

        await eventually_async(under_way, timeout_s=60, what="the workers to be under way")
        consumed_before = case_worker.events_consumed
        if how == "fail_over":
            successor = await asyncio.to_thread(redis_cluster.fail_over, victim)
        else:
            successor = await asyncio.to_thread(redis_cluster.kill, victim)
        assert successor in redis_cluster.masters() and victim not in redis_cluster.masters()
        assert redis_cluster.master_of_slot(identity_slot) == successor
        # The failover fell inside the stream, not after it.
        assert consumed_before < len(records)

        await asyncio.to_thread(sender.join)

        async def all_applied() -> bool:
            return case_worker.events_consumed >= len(records)

        await eventually_async(all_applied, timeout_s=120, what="every event to be applied")
        timelines = eventually(
            lambda: (lambda t: t if sum(map(len, t.values())) >= len(records) else None)(
                _timelines(redis_cluster.urls()[0], redis_prefix)
            ),
            timeout_s=30,
            what="every message on a timeline",
        )
    finally:
        sender.join(timeout=60)
        await app.stop()
        producer.close()
        await client.aclose()
        if how == "kill":
            await asyncio.to_thread(redis_cluster.restart, victim)

    assert sorted(timelines) == list(range(CUSTOMERS)), "a customer is missing"
    for customer, sequence in timelines.items():
        # Exactly once each (nothing lost, nothing duplicated) and in the order sent.
        assert sequence == list(range(MESSAGES)), f"customer {customer}: {sequence}"


# Counts its runs on its key.
_COUNTING = "return redis.call('INCR', KEYS[1])"


async def test_a_master_without_the_scripts_runs_only_its_own_calls_again(
    redis_cluster: RedisClusterStack, unique_id: str
) -> None:
    """A master that has no scripts (a replica promoted by a failover, a restarted node) refuses
    its calls of a pipeline unrun: the script is loaded on every master and only those calls go
    again, so each call runs exactly once (``pipeline.scripts.run_pipelined``)."""
    url = redis_cluster.up()  # whole again if an earlier test left a node down
    masters = redis_cluster.masters()
    keys: dict[int, str] = {}  # one key on each master
    n = 0
    while len(keys) < len(masters):
        key = f"lost-script:{unique_id}:{{{n}}}"
        keys.setdefault(redis_cluster.master_of_slot(key_slot(key.encode())), key)
        n += 1
    client = redis_client(CLUSTER, url)
    try:
        script = client.register_script(_COUNTING)
        await client.script_load(_COUNTING)  # on every master
        forgetful = redis_sync_client(RedisSettings(), f"redis://127.0.0.1:{masters[0]}/0")
        try:
            forgetful.script_flush()
            assert forgetful.script_exists(script.sha) == [False]
        finally:
            forgetful.close()

        replies = await run_pipelined(client, script, [([key], ()) for key in keys.values()])

        assert replies == [1] * len(keys)
        assert [int(await client.get(key)) for key in keys.values()] == [1] * len(keys)
        assert await client.script_exists(script.sha) == [True]  # on every master again
    finally:
        await client.delete(*keys.values())
        await client.aclose()
