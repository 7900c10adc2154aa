"""`omnirouter replay --from` rebuilds identity and case state from the log: the rebuilt state
equals the live one, and replaying over intact state changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnirouter import cli
from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    Channel,
    Content,
    Direction,
    InteractionEvent,
    ProviderRefs,
    ResolvedInteraction,
    encode,
    topic_spec,
)
from omnirouter.ops.state_export import export_state
from omnirouter.pipeline.cases.entries import note_entry
from omnirouter.pipeline.cases.operations import CaseOperations, apply_and_describe
from omnirouter.pipeline.identity.operations import KafkaEventPublisher
from support.events import identifier, inbound
from support.kafka import TopicReader, create_catalogue
from support.replay_checks import (
    applied_fold,
    differences,
    point_cli_at,
    same_instant_in_one_order,
)
from support.workers import start_workers

pytestmark = pytest.mark.integration

RULES = """
queues: [{id: help}]
default_queue: help
"""


def _run_cli(argv: list[str]) -> Any:
    return asyncio.to_thread(cli.main, argv)


async def test_replay_rebuilds_identity_and_cases_equal_to_the_live_state(
    stack: StackAddresses,
    unique_id: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    topic = lambda key: topic_spec(key).name(prefix)  # noqa: E731 - a one-line helper
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="replay-test")
    publisher = KafkaEventPublisher(producer)
    app, cases, _, _, client = await start_workers(
        stack,
        app_id=f"replay-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        rules_yaml=RULES,
    )
    operations = CaseOperations(cases, publisher, topic_prefix=prefix, context_entries=10)
    reader = TopicReader(
        stack.kafka_bootstrap_servers, [topic("interactions.resolved"), topic("cases.events")]
    )
    await reader.__aenter__()

    async def applied(cause: uuid.UUID, kind: CaseEventKind | None = None) -> CaseEvent:
        """The case worker's announcement of ``cause``: it has been applied."""
        found = await reader.wait_for(
            lambda r: [
                e
                for e in r.decoded(topic("cases.events"), CaseEvent)
                if e.cause_event_id == cause and (kind is None or e.kind == kind)
            ],
            what=f"case event for {cause}",
        )
        return found[-1]

    async def write(event: InteractionEvent) -> tuple[str, CaseEvent]:
        """A customer writes; returns their customer id and the case event it caused."""
        producer.send(
            topic("interactions.inbound"), encode(event), key=event.routing_key.encode()
        ).get(30)
        resolved = await reader.wait_for(
            lambda r: [
                x
                for x in r.decoded(topic("interactions.resolved"), ResolvedInteraction)
                if x.interaction.event_id == event.event_id
            ],
            what="resolution",
        )
        return resolved[0].customer_id, await applied(event.event_id)

    ann_email = identifier("email", f"ann.{unique_id}@example.com")
    ann_phone = identifier("phone", "+15550104401")
    bob_chat = identifier("chat_visitor", f"visitor-{unique_id}")
    carol_phone = identifier("phone", "+15550104402")
    try:
        ann, ann_opened = await write(
            inbound("email", ann_email, text="I was charged twice on my invoice")
        )
        sms_customer, _ = await write(inbound("sms", ann_phone, text="Any news on the refund?"))
        assert sms_customer != ann  # nobody knows yet that the phone is Ann's
        merging = inbound("webform", ann_email, ann_phone, text="It's me, Ann, same person")
        survivor, _ = await write(merging)
        assert survivor == ann
        await applied_fold(reader, topic)
        bob, bob_opened = await write(inbound("webchat", bob_chat, text="hello from the chat"))
        _, carol_opened = await write(inbound("whatsapp", carol_phone, text="where is my parcel?"))

        # An agent replies to Bob, notes something on Ann's case, and resolves Carol's case.
        now = datetime.now(UTC)
        reply = InteractionEvent(
            occurred_at=now,
            received_at=now,
            channel=Channel.WEBCHAT,
            direction=Direction.OUTBOUND,
            identifiers=(bob_chat,),
            content=Content(text="Hi Bob, how can I help?"),
            provider=ProviderRefs(provider="omnirouter"),
            customer_id=bob,
            case_id=bob_opened.case.case_id,
            agent_id="ava",
        )
        producer.send(topic("interactions.outbound"), encode(reply), key=bob.encode()).get(30)
        await applied(reply.event_id)
        note = note_entry(
            uuid.uuid4(), now, case_id=ann_opened.case.case_id, agent_id="ava", text="VIP, be kind"
        )
        _, note_events = await apply_and_describe(cases, "default", ann, [note])
        for event in note_events:
            publisher.publish(topic("cases.events"), ann, encode(event))
        await operations.change_status(
            carol_opened.case.case_id, CaseStatus.RESOLVED, reason="parcel found"
        )
        # Carol writes again within the reopen window: the same case reopens.
        _, reopened = await write(inbound("whatsapp", carol_phone, text="it is broken, though"))
        assert reopened.case.case_id == carol_opened.case.case_id
        assert reopened.case.reopen_count == 1
    finally:
        await app.stop()  # nothing changes the state any more: the live state is final
        await reader.__aexit__(None, None, None)

    try:
        live = same_instant_in_one_order(await export_state(client, redis_prefix))
        assert len(live["default"]["identity"]["customers"]) >= 4
        timeline_key = f"{{{redis_prefix}:cus:default:{ann}}}:timeline"
        ann_timeline = live["default"]["cases"][timeline_key]
        assert {e.get("system_type") for e in ann_timeline} >= {"merge", "note", "status"}

        # Redis loses everything; the log has it all.
        keys = [k async for k in client.scan_iter(match=f"*{redis_prefix}*", count=1000)]
        await client.delete(*keys)
        assert await export_state(client, redis_prefix) != live

        point_cli_at(monkeypatch, stack, prefix, redis_prefix)
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        capsys.readouterr()
        assert await _run_cli(["replay", "--from", since, "--yes"]) == 0
        first = capsys.readouterr().out
        assert "published nothing" in first
        rebuilt = same_instant_in_one_order(await export_state(client, redis_prefix))
        assert rebuilt == live, differences(live, rebuilt)

        # Over intact state, a replay changes nothing and applies nothing again.
        assert await _run_cli(["replay", "--from", "1h", "--yes"]) == 0
        second = capsys.readouterr().out
        assert "identity: 0 events resolved" in second, second
        assert "cases: 0 entries applied" in second, second
        again = same_instant_in_one_order(await export_state(client, redis_prefix))
        assert again == live, differences(live, again)
    finally:
        await client.aclose()
        producer.close()
