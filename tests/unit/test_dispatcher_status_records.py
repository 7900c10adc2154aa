"""The records that report a delivery: the status event and the dead letter (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from omnirouter.events import (
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
    derived_event_id,
    encode,
)
from omnirouter.pipeline.dispatcher import DeliveryOutcome, status_record
from omnirouter.pipeline.dispatcher.delivery import failure_dead_letter

AT = datetime(2026, 11, 24, 9, 31, tzinfo=UTC)
REPLY = InteractionEvent(
    tenant="acme",
    occurred_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
    channel=Channel.SMS,
    direction=Direction.OUTBOUND,
    identifiers=(Identifier(kind=IdentifierKind.PHONE, value="+15550102345"),),
    content=Content(text="On its way"),
    provider=ProviderRefs(provider="omnirouter"),
    customer_id="cus-1",
    case_id="case-9",
    agent_id="agent-7",
)
SENT = DeliveryOutcome(delivered=True, provider="twilio", message_id="SM1", attempts=1)
FAILED = DeliveryOutcome.failed("twilio", "twilio answered HTTP 400: bad To", attempts=1)


def test_a_delivered_reply_is_reported_sent_with_the_providers_id() -> None:
    status = status_record(REPLY, SENT, at=AT)
    assert status.kind is InteractionKind.DELIVERY_STATUS
    assert status.direction is Direction.OUTBOUND
    assert status.content.text == "Delivered by sms"
    assert status.provider == ProviderRefs(provider="twilio", message_id="SM1", raw_status="sent")
    assert (status.tenant, status.customer_id, status.case_id) == ("acme", "cus-1", "case-9")
    assert (status.channel, status.identifiers) == (REPLY.channel, REPLY.identifiers)
    assert status.occurred_at == AT
    assert status.routing_key == "cus-1"  # same partition as the customer's other replies


def test_the_status_id_is_derived_from_the_reply_so_a_redelivery_reports_the_same_id() -> None:
    first = status_record(REPLY, SENT, at=AT)
    again = status_record(REPLY, SENT, at=datetime(2026, 11, 25, tzinfo=UTC))
    assert (
        first.event_id == again.event_id == derived_event_id(REPLY.event_id, "delivery:delivered")
    )
    assert first.causation_id == REPLY.event_id


def test_a_failed_reply_is_reported_with_the_reason() -> None:
    status = status_record(REPLY, FAILED, at=AT)
    assert status.content.text == "Not delivered: twilio answered HTTP 400: bad To"
    assert status.provider.raw_status == "failed"
    assert status.provider.message_id is None


def test_a_reply_queued_for_an_offline_visitor_is_sent_but_says_it_waits() -> None:
    chat = REPLY.model_copy(update={"channel": Channel.WEBCHAT})
    queued = DeliveryOutcome(delivered=True, provider="webchat", message_id="e", status="queued")
    status = status_record(chat, queued, at=AT)
    assert status.provider.raw_status == "sent"
    assert status.content.text == "Delivered by webchat (waiting for the customer to reconnect)"


def test_the_dead_letter_keeps_the_original_bytes_and_says_why() -> None:
    raw = encode(REPLY)
    letter = failure_dead_letter(
        raw, b"cus-1", REPLY, FAILED, source_topic="omni.x", source_partition=2, source_offset=7
    )
    assert letter.stage == "dispatcher"
    assert letter.reason == "twilio answered HTTP 400: bad To"
    assert letter.error_type == "DeliveryFailed.permanent"
    assert letter.original_value() == raw
    assert letter.original_key() == b"cus-1"
    assert (letter.tenant, letter.causation_id) == ("acme", REPLY.event_id)
    again = failure_dead_letter(
        raw, b"cus-1", REPLY, FAILED, source_topic="omni.x", source_partition=2, source_offset=7
    )
    assert again.event_id == letter.event_id  # re-failing the same record dedupes downstream


def test_giving_up_on_retries_is_told_apart_from_a_refusal() -> None:
    exhausted = DeliveryOutcome.failed("meta", "gave up", attempts=5, exhausted=True)
    letter = failure_dead_letter(b"{}", None, REPLY, exhausted)
    assert letter.error_type == "DeliveryFailed.retries_exhausted"
