"""omnirouter.Publisher, the SDK for third-party adapters, on the real broker."""

from __future__ import annotations

import pytest

from omnirouter import Publisher
from omnirouter.devstack import StackAddresses
from omnirouter.events import InteractionEvent, topic_spec
from support.kafka import TopicReader, create_catalogue

pytestmark = pytest.mark.integration


async def test_an_adapter_publishes_a_message_and_a_retry_keeps_its_event_id(
    stack: StackAddresses, unique_id: str
) -> None:
    prefix = f"test.{unique_id}."
    create_catalogue(stack.kafka_bootstrap_servers, prefix, max_partitions=1)
    with Publisher(stack.kafka_bootstrap_servers, topic_prefix=prefix) as publisher:
        receipts = [
            publisher.publish_message(
                channel="api",
                provider="acme-messenger",
                message_id="msg-8812",
                sender={"kind": "external_id", "value": "acme:user:551"},
                more_identifiers=[{"kind": "email", "value": "ana@example.com"}],
                text="Where is my order 1182?",
                display_name="Ana Silva",
            )
            for _ in range(2)
        ]
    assert receipts[0].event_id == receipts[1].event_id
    assert receipts[1].offset == receipts[0].offset + 1  # both written; the router dedupes
    topic = topic_spec("interactions.inbound").name(prefix)
    async with TopicReader(stack.kafka_bootstrap_servers, [topic]) as reader:
        events = await reader.wait_for(
            lambda r: (lambda e: e if len(e) == 2 else None)(r.decoded(topic, InteractionEvent)),
            what="the two writes",
        )
    event = events[0]
    assert str(event.event_id) == receipts[0].event_id
    assert [i.address for i in event.identifiers] == [
        "external_id:acme:user:551",
        "email:ana@example.com",
    ]
    assert (event.display_name, event.content.text) == ("Ana Silva", "Where is my order 1182?")


def test_the_sdk_refuses_replies_and_invalid_events(stack: StackAddresses) -> None:
    with (
        Publisher(stack.kafka_bootstrap_servers, topic_prefix="unused.") as publisher,
        pytest.raises(ValueError, match="kind"),
    ):
        publisher.publish_message(
            channel="api", provider="x", sender={"kind": "pager", "value": "1"}, text="hi"
        )
