"""Replies on the real broker and Redis reach the customer through each channel's provider."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

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
)
from omnirouter.redis_keys import ChatKeys, dispatch_claim_key
from support.dispatching import (
    BACKOFF_BASE_S,
    EMAIL_FROM,
    MAX_ATTEMPTS,
    SMS_FROM,
    WHATSAPP_FROM,
    Dispatch,
)
from support.fake_providers import serve_fake_providers, serve_smtp_relay
from support.waiting import eventually_async

pytestmark = pytest.mark.integration

PHONE = "+15550102345"


def reply(
    channel: str,
    *identifiers: Identifier,
    text: str = "Your parcel left the depot this morning.",
    customer_id: str = "cus-ana",
    provider: str = "omnirouter",
    subject: str | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
) -> InteractionEvent:
    """An agent's reply to the customer, as the desktop puts it on interactions.outbound."""
    return InteractionEvent(
        occurred_at=datetime.now(UTC),
        channel=Channel(channel),
        direction=Direction.OUTBOUND,
        identifiers=identifiers,
        content=Content(text=text, subject=subject),
        provider=ProviderRefs(provider=provider, in_reply_to=in_reply_to, references=references),
        customer_id=customer_id,
        case_id=f"case-1-{customer_id}",
        agent_id="agent-7",
    )


def phone(value: str = PHONE, network: str | None = None) -> Identifier:
    return Identifier(kind=IdentifierKind.PHONE, value=value, provider=network)


async def _ready(items: list[object]) -> list[object] | None:
    return items or None


def status_of(statuses: list[InteractionEvent], event: InteractionEvent) -> InteractionEvent:
    mine = [s for s in statuses if s.causation_id == event.event_id]
    assert mine, f"no status record for {event.event_id}"
    return mine[-1]


async def test_an_sms_reply_reaches_twilio_and_is_reported_sent(dispatch: Dispatch) -> None:
    event = reply("sms", phone())
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (sent,) = dispatch.providers.sent_to("twilio")
    assert sent.form == {
        "To": [PHONE],
        "From": [SMS_FROM],
        "Body": ["Your parcel left the depot this morning."],
    }
    assert status.event_id == derived_event_id(event.event_id, "delivery:delivered")
    assert status.kind is InteractionKind.DELIVERY_STATUS
    assert status.direction is Direction.OUTBOUND
    assert (status.customer_id, status.case_id, status.channel) == (
        event.customer_id,
        event.case_id,
        Channel.SMS,
    )
    assert status.identifiers == event.identifiers
    assert status.content.text == "Delivered by sms"
    assert status.provider.provider == "twilio"
    assert status.provider.raw_status == "sent"
    assert status.provider.message_id == sent.answered_id


async def test_status_records_read_back_from_the_topic_are_not_delivered(
    dispatch: Dispatch,
) -> None:
    event = reply("sms", phone())
    dispatch.send(event)
    await dispatch.statuses(1)
    # The reply, then its own status record coming back on the same topic.
    await dispatch.consumed(2)

    assert len(dispatch.providers.sent_to("twilio")) == 1
    assert not dispatch.reader.on(dispatch.topic("deadletter"))


async def test_a_whatsapp_reply_through_twilio_uses_whatsapp_addresses(dispatch: Dispatch) -> None:
    event = reply("whatsapp", phone(network="whatsapp"), provider="twilio", text="Hola Ana")
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (sent,) = dispatch.providers.sent_to("twilio")
    assert sent.form == {
        "To": [f"whatsapp:{PHONE}"],
        "From": [f"whatsapp:{WHATSAPP_FROM}"],
        "Body": ["Hola Ana"],
    }
    assert status.provider.provider == "twilio"
    assert status.provider.message_id == sent.answered_id
    assert status.content.text == "Delivered by whatsapp"


async def test_a_whatsapp_reply_to_a_meta_conversation_goes_through_meta(
    dispatch: Dispatch,
) -> None:
    event = reply("whatsapp", phone(network="whatsapp"), provider="meta", text="Hola Ana")
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (sent,) = dispatch.providers.sent_to("meta")
    assert sent.json == {
        "messaging_product": "whatsapp",
        "to": PHONE.lstrip("+"),
        "type": "text",
        "text": {"body": "Hola Ana"},
    }
    assert not dispatch.providers.sent_to("twilio")
    assert status.provider.provider == "meta"
    assert status.provider.message_id == sent.answered_id
    assert status.provider.message_id and status.provider.message_id.startswith("wamid.")


async def test_an_email_reply_is_threaded_into_the_customers_conversation(
    dispatch: Dispatch,
) -> None:
    event = reply(
        "email",
        Identifier(kind=IdentifierKind.EMAIL, value="ana@example.com"),
        subject="Re: Where is my parcel?",
        text="Hello Ana,\nyour parcel left the depot this morning.",
        in_reply_to="<m2@mail.example.com>",
        references=("<m1@mail.example.com>",),
    )
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    received = await eventually_async(
        lambda: _ready(dispatch.smtp.received), what="the e-mail at the SMTP relay"
    )
    (mail,) = received
    message = mail.message
    assert mail.rcpt_tos == ["ana@example.com"]
    assert message["To"] == "ana@example.com"
    assert message["From"] == EMAIL_FROM
    assert message["Subject"] == "Re: Where is my parcel?"
    assert message["In-Reply-To"] == "<m2@mail.example.com>"
    assert message["References"] == "<m1@mail.example.com> <m2@mail.example.com>"
    body = message.get_content().replace("\r\n", "\n").strip()  # SMTP carries CRLF line ends
    assert body == "Hello Ana,\nyour parcel left the depot this morning."
    assert status.provider.provider == "smtp"
    assert status.provider.message_id == message["Message-ID"]


async def test_a_chat_reply_reaches_the_connected_visitor(dispatch: Dispatch) -> None:
    keys = ChatKeys(dispatch.settings.redis.key_prefix, "default", "v-31")
    pubsub = dispatch.redis.pubsub()
    await pubsub.subscribe(keys.channel)
    try:
        event = reply("webchat", Identifier(kind=IdentifierKind.CHAT_VISITOR, value="v-31"))
        dispatch.send(event)

        async def published() -> dict[str, object] | None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            return json.loads(message["data"]) if message else None

        frame = await eventually_async(published, what="the reply on the visitor's channel")
    finally:
        await pubsub.aclose()
    assert frame["type"] == "message"
    assert frame["event_id"] == str(event.event_id)
    assert frame["text"] == event.content.text
    assert frame["agent_id"] == "agent-7"
    assert datetime.fromisoformat(str(frame["at"])) == event.occurred_at
    status = status_of(await dispatch.statuses(1), event)
    assert status.provider.raw_status == "sent"
    assert status.content.text == "Delivered by webchat"
    assert await dispatch.redis.llen(keys.pending) == 0


async def test_a_chat_reply_waits_for_an_offline_visitor(dispatch: Dispatch) -> None:
    keys = ChatKeys(dispatch.settings.redis.key_prefix, "default", "v-offline")
    event = reply("webchat", Identifier(kind=IdentifierKind.CHAT_VISITOR, value="v-offline"))
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    pending = await dispatch.redis.lrange(keys.pending, 0, -1)
    assert [json.loads(p)["event_id"] for p in pending] == [str(event.event_id)]
    assert 0 < await dispatch.redis.ttl(keys.pending) <= 7 * 86400
    assert status.provider.raw_status == "sent"
    assert "waiting for the customer" in status.content.text


async def test_a_provider_failing_twice_is_retried_until_it_accepts(dispatch: Dispatch) -> None:
    dispatch.providers.fail_next(2, status=503)
    event = reply("sms", phone())
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    sent = dispatch.providers.sent_to("twilio")
    assert [r.status for r in sent] == [503, 503, 201]
    assert dispatch.waits == [BACKOFF_BASE_S, BACKOFF_BASE_S * 2]
    assert status.provider.raw_status == "sent"
    assert status.provider.message_id == sent[-1].answered_id
    assert not dispatch.reader.on(dispatch.topic("deadletter"))


async def test_a_permanent_refusal_is_dead_lettered_and_reported_failed(
    dispatch: Dispatch,
) -> None:
    dispatch.providers.fail_next(1, status=400)
    event = reply("sms", phone())
    raw = dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (letter,) = await dispatch.dead_letters(1)
    assert len(dispatch.providers.sent_to("twilio")) == 1  # not retried
    assert status.provider.raw_status == "failed"
    assert status.content.text.startswith("Not delivered: twilio answered HTTP 400")
    assert letter.stage == "dispatcher"
    assert letter.error_type == "DeliveryFailed.permanent"
    assert letter.reason.startswith("twilio answered HTTP 400")
    assert letter.original_value() == raw
    assert letter.original_key() == event.customer_id.encode()  # type: ignore[union-attr]
    assert letter.causation_id == event.event_id


async def test_a_provider_down_beyond_max_attempts_is_dead_lettered(dispatch: Dispatch) -> None:
    dispatch.providers.fail_next(MAX_ATTEMPTS + 5, status=503)
    event = reply("whatsapp", phone(network="whatsapp"), provider="meta")
    raw = dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (letter,) = await dispatch.dead_letters(1)
    assert len(dispatch.providers.sent_to("meta")) == MAX_ATTEMPTS
    assert status.provider.raw_status == "failed"
    assert status.provider.provider == "meta"
    assert letter.error_type == "DeliveryFailed.retries_exhausted"
    assert f"gave up after {MAX_ATTEMPTS} attempts" in letter.reason
    assert letter.original_value() == raw


async def test_a_redelivered_reply_reaches_the_provider_once(dispatch: Dispatch) -> None:
    event = reply("sms", phone())
    dispatch.send(event)
    first = status_of(await dispatch.statuses(1), event)
    dispatch.send(event)  # the same event again, as a producer retry or a replay would

    statuses = await dispatch.statuses(2)
    assert len(dispatch.providers.sent_to("twilio")) == 1
    assert [s.event_id for s in statuses] == [first.event_id, first.event_id]
    assert statuses[1].provider == first.provider
    claim = await dispatch.redis.get(
        dispatch_claim_key(dispatch.settings.redis.key_prefix, str(event.event_id))
    )
    assert claim is not None and json.loads(claim)["status"] == "sent"


async def test_a_reply_written_twice_back_to_back_reaches_the_provider_once(
    dispatch: Dispatch,
) -> None:
    event = reply("sms", phone())
    dispatch.send_back_to_back(event, event)

    statuses = await dispatch.statuses(2)
    assert len(dispatch.providers.sent_to("twilio")) == 1
    assert {s.provider.raw_status for s in statuses} == {"sent"}


async def test_a_voice_reply_is_a_permanent_failure(dispatch: Dispatch) -> None:
    event = reply("voice", phone())
    raw = dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (letter,) = await dispatch.dead_letters(1)
    assert status.provider.raw_status == "failed"
    assert status.content.text == "Not delivered: voice has no outbound messages"
    assert letter.reason == "voice has no outbound messages"
    assert letter.stage == "dispatcher"
    assert letter.original_value() == raw
    assert not dispatch.providers.requests


async def test_an_undecodable_record_is_dead_lettered_and_the_stream_goes_on(
    dispatch: Dispatch,
) -> None:
    dispatch.send_raw(b"{not json", key="cus-ana")
    event = reply("sms", phone())
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    (letter,) = await dispatch.dead_letters(1)
    assert letter.stage == "dispatcher"
    assert letter.error_type.startswith("UndecodableEvent")
    assert letter.original_value() == b"{not json"
    assert status.provider.raw_status == "sent"


async def test_one_customers_replies_go_out_in_the_order_written(dispatch: Dispatch) -> None:
    dispatch.providers.fail_next(1, status=503)  # the first reply is retried; order must hold
    texts = [f"part {n} of 6" for n in range(6)]
    for text in texts:
        dispatch.send(reply("sms", phone(), text=text))
    other = reply("sms", phone("+15550109999"), customer_id="cus-bo", text="for bo")
    dispatch.send(other)

    await dispatch.statuses(len(texts) + 1)
    delivered = [
        r.form["Body"][0]
        for r in dispatch.providers.sent_to("twilio")
        if r.status == 201 and r.form["To"] == [PHONE]
    ]
    assert delivered == texts


async def test_a_batch_ends_only_once_its_records_are_on_kafka(dispatch: Dispatch) -> None:
    """When the dispatcher finishes a batch, its status record and dead letter are written."""
    dispatch.send(reply("voice", phone()))
    await dispatch.consumed(1)

    assert await dispatch.end_offsets("deadletter") == 1
    assert await dispatch.end_offsets("interactions.outbound") == 2  # the reply, its status


async def test_a_reply_that_failed_is_tried_again_when_redelivered(dispatch: Dispatch) -> None:
    """The customer never got it, so a replay (e.g. of its dead letter) sends it."""
    dispatch.providers.fail_next(1, status=400)
    event = reply("sms", phone())
    dispatch.send(event)
    await dispatch.dead_letters(1)

    dispatch.send(event)
    await dispatch.statuses(2)
    assert [r.status for r in dispatch.providers.sent_to("twilio")] == [400, 201]
    claim = await dispatch.redis.get(
        dispatch_claim_key(dispatch.settings.redis.key_prefix, str(event.event_id))
    )
    assert claim is not None and json.loads(claim)["status"] == "sent"


async def test_a_reply_another_dispatcher_is_sending_is_not_sent_twice(dispatch: Dispatch) -> None:
    """A claim held elsewhere (a dispatcher that lost the partition) is waited out."""
    event = reply("sms", phone())
    key = dispatch_claim_key(dispatch.settings.redis.key_prefix, str(event.event_id))
    await dispatch.redis.set(key, json.dumps({"status": "sending"}), px=60_000)
    dispatch.send(event)

    async def waiting() -> bool:
        return dispatch.worker.contended_claims == 1

    await eventually_async(waiting, what="the dispatcher to wait on the claim")
    assert not dispatch.providers.requests

    done = {"status": "sent", "delivery": "sent", "provider": "twilio", "message_id": "SMother"}
    await dispatch.redis.set(key, json.dumps(done), ex=60)  # ...until the holder records "sent"
    status = status_of(await dispatch.statuses(1), event)
    assert status.provider.message_id == "SMother"
    assert not dispatch.providers.requests


async def test_a_crashed_dispatchers_claim_runs_out_and_the_reply_is_sent(
    dispatch: Dispatch,
) -> None:
    event = reply("sms", phone())
    key = dispatch_claim_key(dispatch.settings.redis.key_prefix, str(event.event_id))
    await dispatch.redis.set(key, json.dumps({"status": "sending"}), px=500)
    dispatch.send(event)

    status = status_of(await dispatch.statuses(1), event)
    assert status.provider.raw_status == "sent"
    assert len(dispatch.providers.sent_to("twilio")) == 1


def test_the_fake_providers_leave_no_thread_behind() -> None:
    before = set(threading.enumerate())
    with serve_fake_providers(), serve_smtp_relay():
        assert len(set(threading.enumerate()) - before) >= 2
    assert set(threading.enumerate()) - before == set()
