"""Auto-acknowledgement through the whole pipeline: one message with an estimated wait, once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import (
    TOPICS,
    CaseEvent,
    CaseRouted,
    InteractionEvent,
    RoutingDecision,
    RoutingOutcome,
    TimelineEntryKind,
    topic_spec,
)
from support.events import identifier, inbound
from support.kafka import TopicReader, create_catalogue
from support.workers import start_workers

pytestmark = pytest.mark.integration

RULES = """
queues:
  - id: help
    sla: {first_response_s: 1800}
    auto_ack:
      enabled: true
      templates:
        en: "Hi {name}, we got your message. An agent will answer in {wait}."
        es: "Hola {name}, recibimos tu mensaje. Te responderemos en {wait}."
default_queue: help
"""


@pytest.fixture
async def routed_pipeline(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> AsyncIterator[tuple]:  # type: ignore[type-arg]
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    app, cases, _, _, client = await start_workers(
        stack,
        app_id=f"acks-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        rules_yaml=RULES,
    )
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="acks-test")
    outputs = [topic_spec(t.key).name(prefix) for t in TOPICS if t.key != "interactions.inbound"]
    try:
        async with TopicReader(stack.kafka_bootstrap_servers, outputs) as reader:
            yield prefix, producer, reader, cases
    finally:
        await app.stop()
        producer.close()
        await client.aclose()


async def test_a_queued_case_is_acknowledged_once_with_an_estimated_wait(routed_pipeline) -> None:  # type: ignore[no-untyped-def]
    prefix, producer, reader, _cases = routed_pipeline
    topic = lambda key: topic_spec(key).name(prefix)  # noqa: E731 - a one-line helper
    message = inbound("sms", identifier("phone", "+15550101010"), text="Is my order shipped?")
    message = message.model_copy(update={"display_name": "Rosa", "attributes": {"language": "es"}})
    producer.send(
        topic("interactions.inbound"),
        message.model_dump_json().encode(),
        key=message.routing_key.encode(),
    ).get(30)

    acks = await reader.wait_for(
        lambda r: r.decoded(topic("interactions.outbound"), InteractionEvent),
        what="the acknowledgement",
    )
    decisions = await reader.wait_for(
        lambda r: r.decoded(topic("routing.decisions"), RoutingDecision), what="the decision"
    )
    routed = await reader.wait_for(
        lambda r: r.decoded(topic("cases.routed"), CaseRouted), what="the routed case"
    )

    assert [d.outcome for d in decisions] == [RoutingOutcome.QUEUED]  # nobody is online
    assert routed[0].case.status == "queued"
    assert routed[0].decision == decisions[0]
    ack = acks[0]
    assert ack.channel == "sms"
    assert [i.address for i in ack.identifiers] == ["phone:+15550101010"]
    assert ack.case_id == routed[0].case.case_id
    assert (
        ack.content.text == "Hola Rosa, recibimos tu mensaje. Te responderemos en about 30 minutes."
    )
    assert ack.attributes["estimated_wait_s"] == "1800"  # no agents online: the SLA target

    # The acknowledgement lands on the customer's timeline as an outbound reply.
    def timeline_has_ack(r):  # type: ignore[no-untyped-def]
        events = r.decoded(topic("cases.events"), CaseEvent)
        return any(
            t.kind is TimelineEntryKind.REPLY and t.entry_id == str(ack.event_id)
            for e in events
            for t in e.context.recent_timeline
        )

    await reader.wait_for(timeline_has_ack, what="the acknowledgement on the timeline")

    # Replaying the same event changes nothing: no second acknowledgement.
    before = len(reader.on(topic("cases.events")))
    producer.send(
        topic("interactions.inbound"),
        message.model_dump_json().encode(),
        key=message.routing_key.encode(),
    ).get(30)
    await reader.wait_for(
        lambda r: len(r.on(topic("cases.events"))) > before, what="the replay to be processed"
    )
    await reader.poll()
    assert len(reader.on(topic("interactions.outbound"))) == 1
    assert len(reader.decoded(topic("routing.decisions"), RoutingDecision)) == 1
