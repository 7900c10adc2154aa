"""`omnirouter identity erase`: a dry run shows what would go and changes nothing; without --yes
it asks on a terminal and otherwise stops with one line; with --yes the person is erased and
the erasure announced; an unknown customer is one line and exit 1. Real Kafka and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from omnirouter import cli
from omnirouter.connections import ensure_topics
from omnirouter.devstack import StackAddresses
from omnirouter.events import CustomerErased, ResolvedInteraction, topic_spec
from omnirouter.pipeline.cases.entries import inbound_entry
from omnirouter.pipeline.cases.store import RedisCaseStore
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore, ResolveRequest
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import CaseSettings, KafkaSettings, Settings
from support.events import identifier, inbound
from support.kafka import TopicReader
from support.redis_state import snapshot_keys
from support.replay_checks import point_cli_at

pytestmark = pytest.mark.integration


@dataclass
class Person:
    """Two customers merged into one person, each with a case, plus someone else."""

    survivor: str
    absorbed: str
    bystander: str


@pytest.fixture
async def redis(stack: StackAddresses) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def person(
    stack: StackAddresses,
    unique_id: str,
    redis_prefix: str,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> Person:
    prefix = f"test.{unique_id}."
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=stack.kafka_bootstrap_servers, topic_prefix=prefix)
    )
    erased_topic = topic_spec("customers.erased").name(prefix)
    ensure_topics(
        stack.kafka_bootstrap_servers,
        [t._replace(partitions=1) for t in catalogue_topics(settings) if t.name == erased_topic],
    )
    point_cli_at(monkeypatch, stack, prefix, redis_prefix)
    identity = RedisIdentityStore(redis, key_prefix=redis_prefix, policy=IdentityPolicy())
    cases = RedisCaseStore(redis, key_prefix=redis_prefix, settings=CaseSettings())
    email = inbound("email", identifier("email", f"eve.{unique_id}@example.com"))
    sms = inbound("sms", identifier("phone", "+15550104701"))
    both = inbound("webform", *email.identifiers, *sms.identifiers)
    other = inbound("sms", identifier("phone", "+15550104702"))
    events = (email, sms, other, both)
    resolutions = await identity.resolve_batch(
        "default", [ResolveRequest(e.event_id, e.identifiers) for e in events]
    )
    owners = [r.customer_id for r in resolutions]
    for event, owner in zip(events[:3], owners[:3], strict=True):
        resolved = ResolvedInteraction(
            occurred_at=event.occurred_at,
            customer_id=owner,
            interaction=event,
            is_new_customer=True,
            identifiers=event.identifiers,
        )
        await cases.apply({("default", owner): [inbound_entry(resolved, ())]})
    survivor = owners[3]
    absorbed = next(c for c in owners[:2] if c != survivor)
    return Person(survivor, absorbed, owners[2])


def _main(argv: list[str]) -> Any:
    return asyncio.to_thread(cli.main, argv)


async def test_a_dry_run_shows_the_counts_and_erases_nothing(
    person: Person, redis: aioredis.Redis, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await snapshot_keys(redis, redis_prefix)
    assert await _main(["identity", "erase", person.absorbed, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"customer {person.survivor}: {person.survivor}, {person.absorbed}" in out
    counts = dict(line.split() for line in out.splitlines() if line.startswith("  "))
    assert (counts["customers"], counts["cases"], counts["identifiers"]) == ("2", "2", "2")
    assert "dry run: nothing erased" in out
    assert await snapshot_keys(redis, redis_prefix) == before


async def test_without_yes_and_without_a_terminal_it_stops_with_one_line(
    person: Person, redis: aioredis.Redis, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = await snapshot_keys(redis, redis_prefix)
    assert await _main(["identity", "erase", person.survivor]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"omnirouter: error: erasing {person.survivor} cannot be undone: pass --yes (or --dry-run)"
    ]
    assert await snapshot_keys(redis, redis_prefix) == before


async def test_on_a_terminal_it_asks_and_a_no_erases_nothing(
    person: Person,
    redis: aioredis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    before = await snapshot_keys(redis, redis_prefix)
    assert await _main(["identity", "erase", person.survivor]) == 1
    assert asked == [f"erase {person.survivor}? [y/N] "]
    assert "nothing erased" in capsys.readouterr().out
    assert await snapshot_keys(redis, redis_prefix) == before


async def test_with_yes_the_person_is_erased_and_announced(
    stack: StackAddresses,
    person: Person,
    redis: aioredis.Redis,
    unique_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await _main(["identity", "erase", person.absorbed, "--tenant", "default", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"erased {person.survivor}: 2 customer(s), 2 case(s)" in out
    erased_topic = topic_spec("customers.erased").name(f"test.{unique_id}.")
    async with TopicReader(stack.kafka_bootstrap_servers, [erased_topic]) as reader:
        [record] = await reader.wait_for(lambda r: r.on(erased_topic), what="the announcement")
    event = CustomerErased.model_validate_json(record.value)
    assert event.erased_customer_ids == (person.survivor, person.absorbed)
    assert str(event.event_id) in out

    # Gone by either id; the bystander is still there.
    for customer in (person.survivor, person.absorbed):
        assert await _main(["identity", "show", customer]) == 1
        assert capsys.readouterr().err.strip() == f"omnirouter: error: unknown customer {customer}"
    assert await _main(["identity", "show", person.bystander]) == 0
    assert "+15550104702" in capsys.readouterr().out


async def test_an_unknown_customer_is_one_line_and_exit_1(
    person: Person, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _main(["identity", "--tenant", "acme", "erase", person.survivor, "--yes"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"omnirouter: error: unknown customer {person.survivor} (tenant acme)"]
