"""A case folded into another by a merge leaves routing: nobody is offered a case that is gone."""

from __future__ import annotations

import pytest

from omnirouter.connections import create_producer
from omnirouter.devstack import StackAddresses
from omnirouter.events import CaseRouted, CustomerMerged, InteractionEvent, topic_spec
from omnirouter.pipeline.routing.store import RoutingStore
from support.events import identifier, inbound
from support.kafka import TopicReader, create_catalogue
from support.waiting import eventually_async
from support.workers import start_workers

pytestmark = pytest.mark.integration

RULES = """
queues: [{id: help}]
default_queue: help
"""


async def test_the_absorbed_customers_waiting_case_leaves_the_queue_on_the_merge(
    stack: StackAddresses, unique_id: str, redis_prefix: str
) -> None:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=3)
    app, _cases, _, _, client = await start_workers(
        stack,
        app_id=f"fold-{unique_id}",
        prefix=prefix,
        redis_prefix=redis_prefix,
        rules_yaml=RULES,
    )
    producer = create_producer(stack.kafka_bootstrap_servers, client_id="fold-test")
    topic = lambda key: topic_spec(key).name(prefix)  # noqa: E731 - a one-line helper
    routing = RoutingStore(client, key_prefix=redis_prefix)

    def send(event: InteractionEvent) -> None:
        producer.send(
            topic("interactions.inbound"), encode_event(event), key=event.routing_key.encode()
        ).get(30)

    async def waiting() -> list[str]:
        return [r.case_id for r, _ in await routing.queue_view("default", "help")]

    email = identifier("email", f"rosa.{unique_id}@example.com")
    phone = identifier("phone", "+15550107788")
    try:
        async with TopicReader(
            stack.kafka_bootstrap_servers, [topic("cases.routed"), topic("customers.merged")]
        ) as reader:
            # Two customers as far as anyone knows: one case each, both waiting (no agents).
            send(inbound("email", email, text="Parcel missing", minutes_ago=2))
            send(inbound("sms", phone, text="Any news on my parcel?", minutes_ago=1))
            routed = await reader.wait_for(
                lambda r: (lambda d: d if len(d) == 2 else None)(
                    r.decoded(topic("cases.routed"), CaseRouted)
                ),
                what="both cases routed",
            )
            both = {r.case.case_id for r in routed}
            assert set(await waiting()) == both

            # A chat carrying both identifiers: one customer after all; one case survives.
            send(inbound("webchat", email, phone, text="It's me, Rosa, on chat"))
            merged = await reader.wait_for(
                lambda r: r.decoded(topic("customers.merged"), CustomerMerged),
                what="the merge",
            )
            absorbed_case = next(
                r.case.case_id for r in routed if r.case.customer_id == merged[0].absorbed_id
            )
            survivor_case = (both - {absorbed_case}).pop()

            async def only_the_survivor() -> list[str] | None:
                now = await waiting()
                return now if now == [survivor_case] else None

            await eventually_async(
                only_the_survivor, timeout_s=30, what="the folded case to leave the queue"
            )
    finally:
        await app.stop()
        producer.close()
        await client.aclose()


def encode_event(event: InteractionEvent) -> bytes:
    return event.model_dump_json().encode()
