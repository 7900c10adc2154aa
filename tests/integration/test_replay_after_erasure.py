"""`omnirouter replay --from` honours erasures at their place in the log: an erased customer does
not come back, the same phone writing after the erasure is still a new customer, everyone else
is rebuilt as they were, and a replay over a state that holds the erasure changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnirouter import cli
from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    CaseEvent,
    CaseEventKind,
    InteractionEvent,
    ResolvedInteraction,
    RoutingDecision,
    encode,
    topic_spec,
)
from omnirouter.ops.state_export import export_state
from omnirouter.pipeline.identity.erasure import CustomerErasure
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


async def _wipe(client: Any, redis_prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"*{redis_prefix}*", count=1000)]
    await client.delete(*keys)


def _customers_in(state: dict[str, Any]) -> set[str]:
    """Customer ids with an identity record or case keys in an exported state (an erased
    customer's marker, which holds no data, does not count)."""
    tenant = state["default"]
    ids = {key.split(":")[0] for key in tenant["identity"]["customers"]}
    cases = {key for key, value in tenant["cases"].items() if value != {"erased": 1}}
    return ids | {key.split(":cus:default:")[1].split("}")[0] for key in cases}


async def test_replay_keeps_an_erased_customer_erased_and_the_later_one_new(
    stack: StackAddresses,
    unique_id: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    topic = lambda key: topic_spec(key).name(prefix)  # noqa: E731 - a one-line helper
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="replay-erasure-test")
    app, _, _, _, client = await start_workers(
        stack,
        app_id=f"replay-erasure-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        rules_yaml=RULES,
    )
    erasure = CustomerErasure(
        client,
        key_prefix=redis_prefix,
        publisher=KafkaEventPublisher(producer),
        topic_prefix=prefix,
    )
    reader = TopicReader(
        stack.kafka_bootstrap_servers,
        [topic(k) for k in ("interactions.resolved", "cases.events", "routing.decisions")],
    )
    await reader.__aenter__()

    async def write(event: InteractionEvent) -> str:
        """A customer writes; returns their customer id once the case worker (and, for a new
        case, routing) is done with it, so nothing about it is still in flight."""
        producer.send(
            topic("interactions.inbound"), encode(event), key=event.routing_key.encode()
        ).get(30)
        [resolved] = await reader.wait_for(
            lambda r: [
                x
                for x in r.decoded(topic("interactions.resolved"), ResolvedInteraction)
                if x.interaction.event_id == event.event_id
            ],
            what="resolution",
        )
        [applied] = await reader.wait_for(
            lambda r: [
                e
                for e in r.decoded(topic("cases.events"), CaseEvent)
                if e.cause_event_id == event.event_id
            ][:1],
            what=f"case event for {event.event_id}",
        )
        if applied.kind == CaseEventKind.OPENED:
            await reader.wait_for(
                lambda r: [
                    d
                    for d in r.decoded(topic("routing.decisions"), RoutingDecision)
                    if d.case_id == applied.case.case_id
                ],
                what=f"routing of {applied.case.case_id}",
            )
        return str(resolved.customer_id)

    ann_phone = identifier("phone", "+15550104501")
    ann_email = identifier("email", f"ann.{unique_id}@example.com")
    try:
        ann = await write(inbound("email", ann_email, text="my invoice is wrong"))
        ann_sms = await write(inbound("sms", ann_phone, text="any news on the invoice?"))
        assert ann_sms != ann
        merge_sent_after = datetime.now(UTC)
        assert await write(inbound("webform", ann_email, ann_phone, text="same person")) == ann
        await applied_fold(reader, topic)
        bob = await write(inbound("webchat", identifier("chat_visitor", f"v-{unique_id}")))

        outcome = await erasure.erase(ann_sms)  # any id of the person erases all of them
        assert outcome is not None
        assert set(outcome.event.erased_customer_ids) == {ann, ann_sms}

        # Ann's phone writes again: nobody knows it any more, so it is a new customer.
        ann_again = await write(inbound("sms", ann_phone, text="hello, it's me again"))
        assert ann_again not in {ann, ann_sms}
    finally:
        await app.stop()  # nothing changes the state any more: the live state is final
        await reader.__aexit__(None, None, None)

    try:
        live = same_instant_in_one_order(await export_state(client, redis_prefix))
        present = _customers_in(live)
        assert {bob, ann_again} <= present
        assert not {ann, ann_sms} & present
        assert live["default"]["identity"]["owner"] == {
            ann_phone.address: ann_again,
            f"chat_visitor:v-{unique_id}": bob,
        }
        assert live["default"]["identity"]["erasures"] == [str(outcome.event.event_id)]

        point_cli_at(monkeypatch, stack, prefix, redis_prefix)
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

        # Over the live state, which holds the erasure: nothing changes, nothing is applied,
        # and Ann's old messages are not turned into a new customer.
        capsys.readouterr()
        assert await _run_cli(["replay", "--from", since, "--yes"]) == 0
        over_live = capsys.readouterr().out
        assert "1 erasures" in over_live, over_live
        assert "identity: 0 events resolved" in over_live, over_live
        assert "cases: 0 entries applied" in over_live, over_live
        unchanged = same_instant_in_one_order(await export_state(client, redis_prefix))
        assert unchanged == live, differences(live, unchanged)

        # Redis loses everything; the log has it all, the erasure included.
        await _wipe(client, redis_prefix)
        assert _customers_in(await export_state(client, redis_prefix)) == set()

        assert await _run_cli(["replay", "--from", since, "--yes"]) == 0
        rebuilt_out = capsys.readouterr().out
        assert "erasures: 1 applied" in rebuilt_out, rebuilt_out
        rebuilt = same_instant_in_one_order(await export_state(client, redis_prefix))
        assert rebuilt == live, differences(live, rebuilt)

        # And again over the rebuilt state: still nothing to do.
        assert await _run_cli(["replay", "--from", since, "--yes"]) == 0
        again_out = capsys.readouterr().out
        assert "identity: 0 events resolved" in again_out, again_out
        assert "cases: 0 entries applied" in again_out, again_out
        again = same_instant_in_one_order(await export_state(client, redis_prefix))
        assert again == live, differences(live, again)

        # A window that starts after Ann's first messages: the merging one makes a customer
        # the erasure does not name, and the erasure removes it all the same.
        await _wipe(client, redis_prefix)
        assert await _run_cli(["replay", "--from", merge_sent_after.isoformat(), "--yes"]) == 0
        partial = (await export_state(client, redis_prefix))["default"]["identity"]
        assert partial["owner"] == live["default"]["identity"]["owner"]
        assert set(partial["customers"]) == {
            c for c in live["default"]["identity"]["customers"] if c.startswith((bob, ann_again))
        }
    finally:
        await client.aclose()
        producer.close()
