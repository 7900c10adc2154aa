"""Poison messages land on the dead-letter topic with a reason; after a fix they are re-driven."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
import redis.asyncio as aioredis

from omnirouter import cli
from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import ResolvedInteraction, encode, topic_spec
from omnirouter.events.oversize import KEPT_WHEN_TOO_LARGE
from omnirouter.ops.dlq import plan_replay, read_dead_letters
from omnirouter.pipeline import create_app
from omnirouter.pipeline.identity.policy import IdentityPolicy
from omnirouter.pipeline.identity.store import RedisIdentityStore
from omnirouter.pipeline.identity.worker import IdentityWorker
from omnirouter.settings import PipelineSettings
from support.events import identifier, inbound
from support.kafka import TopicReader, create_catalogue
from support.waiting import eventually_async
from support.workers import start_workers

ONE_MB = 1_000_000

pytestmark = pytest.mark.integration


async def _run_identity(stack, prefix, redis_prefix, group, policy):  # type: ignore[no-untyped-def]
    client = aioredis.Redis.from_url(stack.redis_url)
    app = create_app(group, stack.kafka_bootstrap_servers)
    store = RedisIdentityStore(client, key_prefix=redis_prefix, policy=policy)
    IdentityWorker(
        app,
        store,
        policy=policy,
        pipeline=PipelineSettings(batch_max=50, batch_within_s=0.02),
        topic_prefix=prefix,
    )
    await app.start()
    return app, client


def _point_cli_at(
    monkeypatch: pytest.MonkeyPatch, stack: StackAddresses, prefix: str, redis_prefix: str
) -> None:
    for name, value in {
        "OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap_servers,
        "OMNIROUTER_KAFKA__TOPIC_PREFIX": prefix,
        "OMNIROUTER_REDIS__URL": stack.redis_url,
        "OMNIROUTER_REDIS__KEY_PREFIX": redis_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    # The command's logging set-up would outlive the test (handlers on pytest's captured streams).
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)


async def test_poison_messages_are_kept_with_reasons_and_redriven_after_a_fix(
    stack: StackAddresses,
    unique_id: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=1)
    inbound_topic = topic_spec("interactions.inbound").name(prefix)
    resolved_topic = topic_spec("interactions.resolved").name(prefix)
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="dlq-test")
    strict = IdentityPolicy(blocked_values={"email": ["shop@partner.test"]})
    blocked = inbound("webform", identifier("email", "shop@partner.test"), text="partner order")
    # A 1 MB text fits in a Kafka record, but its dead letter (base64) would not: it is kept
    # truncated, with its size and SHA-256, and the stream goes on.
    huge_blocked = inbound("webform", identifier("email", "shop@partner.test"), text="z" * ONE_MB)
    poison = [
        b"{not json",
        b'{"schema_version": 7, "event_id": "x"}',
        b"\xff\xfe invalid utf-8",
        encode(blocked),
        encode(huge_blocked),
    ]
    app, client = await _run_identity(stack, prefix, redis_prefix, f"dlq-{unique_id}", strict)
    try:
        for value in poison:
            producer.send(inbound_topic, value, key=b"k").get(30)
        healthy = inbound("sms", identifier("phone", "+15550101234"), text="still flowing")
        healthy_mb = inbound("sms", identifier("phone", "+15550101235"), text="y" * ONE_MB)
        for event in (healthy, healthy_mb):
            producer.send(inbound_topic, encode(event), key=event.routing_key.encode()).get(30)
        async with TopicReader(stack.kafka_bootstrap_servers, [resolved_topic]) as reader:
            resolved_now = await reader.wait_for(
                lambda r: len(r.on(resolved_topic)) >= 2 and r.on(resolved_topic),
                what="both healthy events resolved",
            )
        texts = sorted(
            len(ResolvedInteraction.model_validate_json(r.value).interaction.content.text)
            for r in resolved_now
        )
        assert texts == [len("still flowing"), ONE_MB]

        async def five_letters() -> list | None:  # type: ignore[type-arg]
            found = await asyncio.to_thread(
                lambda: read_dead_letters(stack.kafka_bootstrap_servers, topic_prefix=prefix)
            )
            return found if len(found) >= 5 else None

        letters = await eventually_async(five_letters, what="five dead letters")
    finally:
        await app.stop()
        await client.aclose()

    reasons = sorted(record.letter.reason.split(":")[0].split(" (")[0] for record in letters)
    assert reasons == [
        "invalid JSON",
        "invalid UTF-8",
        "no usable identifier",
        "no usable identifier",
        "unknown schema_version 7",
    ]
    assert all(record.letter.stage == "identity" for record in letters)
    whole = [r.letter for r in letters if "truncated" not in r.letter.headers]
    assert {letter.original_value() for letter in whole} == set(poison[:4])
    [cut] = [r.letter for r in letters if "truncated" in r.letter.headers]
    big = encode(huge_blocked)
    assert len(big) > ONE_MB and len(cut.model_dump_json()) < 2 * KEPT_WHEN_TOO_LARGE
    assert cut.original_value() == big[:KEPT_WHEN_TOO_LARGE]
    assert cut.headers["original_bytes"] == str(len(big))
    assert cut.headers["original_sha256"] == hashlib.sha256(big).hexdigest()
    assert "kept truncated" in cut.reason

    # `omnirouter dlq list` shows every letter, the 1 MB one with its size, never its payload.
    _point_cli_at(monkeypatch, stack, prefix, redis_prefix)
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["dlq", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5
    [row] = [r for r in rows if r["truncated"]]
    assert (row["stage"], row["size"], row["source_topic"]) == ("identity", len(big), inbound_topic)
    assert len(row["preview"]) <= 61
    assert await asyncio.to_thread(cli.main, ["dlq", "list", "--stage", "identity"]) == 0
    table = capsys.readouterr().out
    assert f"{len(big)}B (truncated)" in table
    assert "\\xff\\xfe invalid utf-8" in table  # escaped, not raw bytes on the terminal
    assert len(table) < 10_000

    # The fix: the partner's mailbox is no longer blocked. Re-drive; the stream resolves it.
    only_blocked = [r for r in letters if r.letter.error_type == "NoUsableIdentifier"]
    plans = plan_replay(only_blocked, topic_prefix=prefix)
    assert {p.target_topic or "skipped" for p in plans} == {inbound_topic, "skipped"}
    app, cases, _, worker, client = await start_workers(
        stack, app_id=f"dlq-{unique_id}", prefix=prefix, redis_prefix=redis_prefix
    )
    try:
        redrive = ["dlq", "replay", "--reason-contains", "no usable identifier", "--yes"]
        assert await asyncio.to_thread(cli.main, redrive) == 0
        assert "re-drove 1, skipped 1" in capsys.readouterr().out
        async with TopicReader(stack.kafka_bootstrap_servers, [resolved_topic]) as reader:
            resolved = await reader.wait_for(
                lambda r: [
                    x
                    for x in r.decoded(resolved_topic, ResolvedInteraction)
                    if x.causation_id == blocked.event_id
                ],
                what="the re-driven event resolved",
            )
            assert resolved[0].interaction.content.text == "partner order"
            customer = resolved[0].customer_id

            async def entries_of_blocked() -> list | None:  # type: ignore[type-arg]
                raw = await cases.read_customer("default", customer, timeline=100)
                found = [e for e in raw["timeline"] if e["entry_id"] == str(blocked.event_id)]
                return found or None

            await eventually_async(entries_of_blocked, what="the re-driven message on the timeline")

            # Re-driving again (an operator running the command twice) duplicates nothing.
            assert await asyncio.to_thread(cli.main, redrive) == 0
            again = await reader.wait_for(
                lambda r: (
                    len(
                        [
                            x
                            for x in r.decoded(resolved_topic, ResolvedInteraction)
                            if x.causation_id == blocked.event_id
                        ]
                    )
                    >= 2
                    and r.on(resolved_topic)
                ),
                what="the second re-drive resolved again",
            )

            async def all_consumed() -> bool:
                return worker.events_consumed >= len(again)

            await eventually_async(all_consumed, what="the case worker caught up")
        assert len(await entries_of_blocked() or []) == 1
        raw = await cases.read_customer("default", customer, timeline=100)
        assert len(raw["cases"]) == 1
    finally:
        await app.stop()
        await client.aclose()
        producer.close()
