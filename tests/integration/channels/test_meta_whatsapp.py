"""WhatsApp Cloud API webhooks: Meta's payload shapes, real signatures, real Kafka."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from omnirouter.events import Channel, IdentifierKind, InteractionEvent, InteractionKind
from omnirouter.ingress.app import create_ingress_app

pytestmark = pytest.mark.integration

APP_SECRET = b"meta-app-secret"
VERIFY_TOKEN = "meta-verify-token"
PATH = "/webhooks/meta/whatsapp"
GRAPH = "https://graph.facebook.com/v20.0"  # the outbound meta_api_base default

WAMID_TEXT = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
WAMID_SECOND = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMQA="
WAMID_IMAGE = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQjU2MEI0RTI3NzlGRTlGQUEyOQA="
WAMID_DOCUMENT = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzRjM3QjhGNjE1NkM0RDdGQjVBNAA="
WAMID_BUTTON = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQkQ0OTdEMDlGRjE4OTE2MkM5MQA="
WAMID_LOCATION = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzMEUyNTY0QjhDMjcxQ0FFNjFBQQA="
WAMID_OURS = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MDk4RjlDQjQ1OTdFQkI5RTcA"


def text_message(wamid: str, body: str, *, sender: str = "16505551234") -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": "1739321024",
        "text": {"body": body},
        "type": "text",
    }


def notification(
    *messages: dict[str, Any],
    contacts: tuple[tuple[str, str], ...] = (("Ana Lima", "16505551234"),),
    statuses: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A ``messages`` notification as Meta posts it (one entry, one change)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
    }
    if messages:
        value["contacts"] = [
            {"profile": {"name": name}, "wa_id": wa_id} for name, wa_id in contacts
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def signed(body: bytes, secret: bytes = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


async def post(gateway, payload: dict[str, Any]) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = json.dumps(payload).encode()
    response: httpx.Response = await gateway.client.post(PATH, content=body, headers=signed(body))
    return response


async def only_published_is_the_next_message(gateway) -> list[InteractionEvent]:  # type: ignore[no-untyped-def]
    """Publish a sentinel message and return everything on the topic once it arrived.

    The topic has one partition, so anything published before the sentinel is read first.
    """
    sentinel = "wamid.SENTINEL"
    answer = await post(gateway, notification(text_message(sentinel, "sentinel")))
    assert answer.status_code == 200
    topic = gateway.topic("interactions.inbound")

    def through_sentinel(reader) -> list[InteractionEvent] | None:  # type: ignore[no-untyped-def]
        events: list[InteractionEvent] = reader.decoded(topic, InteractionEvent)
        seen = [e.provider.message_id for e in events]
        return events if sentinel in seen else None

    events: list[InteractionEvent] = await gateway.reader.wait_for(
        through_sentinel, what="the sentinel message"
    )
    return events


async def test_the_subscription_handshake_echoes_the_challenge(gateway) -> None:  # type: ignore[no-untyped-def]
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    answer = await gateway.client.get(PATH, params=params)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1158201444"},
    ],
)
async def test_a_handshake_without_our_verify_token_is_403(gateway, params) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.get(PATH, params=params)
    assert answer.status_code == 403


async def test_endpoints_are_closed_without_configured_secrets(gateway) -> None:  # type: ignore[no-untyped-def]
    ingress = gateway.settings.ingress.model_copy(
        update={"meta_app_secret": None, "meta_verify_token": None}
    )
    settings = gateway.settings.model_copy(update={"ingress": ingress})
    app = create_ingress_app(dataclasses.replace(gateway.context, settings=settings))
    body = json.dumps(notification(text_message(WAMID_TEXT, "hello"))).encode()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://cx.example.com"
    ) as client:
        handshake = await client.get(
            PATH, params={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
        )
        post_answer = await client.post(PATH, content=body, headers=signed(body))
    assert handshake.status_code == 503
    assert post_answer.status_code == 503


async def test_missing_or_wrong_signatures_are_refused(gateway) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(notification(text_message(WAMID_TEXT, "refund please"))).encode()
    missing = await gateway.client.post(
        PATH, content=body, headers={"Content-Type": "application/json"}
    )
    wrong_secret = await gateway.client.post(
        PATH, content=body, headers=signed(body, secret=b"another-app")
    )
    tampered = await gateway.client.post(
        PATH, content=body.replace(b"refund", b"refuse"), headers=signed(body)
    )

    assert missing.status_code == 401
    assert wrong_secret.status_code == 403
    assert tampered.status_code == 403
    events = await only_published_is_the_next_message(gateway)
    assert [e.provider.message_id for e in events] == ["wamid.SENTINEL"]


async def test_the_signature_covers_the_raw_bytes_as_meta_sent_them(gateway) -> None:  # type: ignore[no-untyped-def]
    """Meta escapes non-ASCII text; the signature is over those bytes, not a re-encoding."""
    payload = notification(text_message(WAMID_TEXT, "Olá, café ☕ </script>"))
    escaped = json.dumps(payload, ensure_ascii=True).replace("/", "\\/").encode()
    answer = await gateway.client.post(PATH, content=escaped, headers=signed(escaped))

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert event.content.text == "Olá, café ☕ </script>"


async def test_every_message_of_a_notification_is_published_in_order(gateway) -> None:  # type: ignore[no-untyped-def]
    payload = notification(
        text_message(WAMID_TEXT, "My parcel never arrived"),
        text_message(WAMID_SECOND, "Order 4711", sender="447700900123"),
        contacts=(("Ana Lima", "16505551234"), ("Ben", "447700900123")),
    )
    answer = await post(gateway, payload)

    assert answer.status_code == 200, answer.text
    first, second = await gateway.inbound(2)
    assert [first.provider.message_id, second.provider.message_id] == [WAMID_TEXT, WAMID_SECOND]
    assert first.channel is Channel.WHATSAPP
    assert first.kind is InteractionKind.MESSAGE
    assert first.identifiers[0].kind is IdentifierKind.PHONE
    assert first.identifiers[0].value == "+16505551234"
    assert first.identifiers[0].provider == "whatsapp"
    assert first.display_name == "Ana Lima"
    assert first.content.text == "My parcel never arrived"
    assert first.occurred_at == datetime.fromtimestamp(1739321024, UTC)
    assert second.display_name == "Ben"
    assert [i.address for i in second.identifiers] == ["phone:+447700900123"]


async def test_media_messages_keep_their_attachment_metadata(gateway) -> None:  # type: ignore[no-untyped-def]
    image = {
        "from": "16505551234",
        "id": WAMID_IMAGE,
        "timestamp": "1739321100",
        "type": "image",
        "image": {
            "caption": "The label on the box",
            "mime_type": "image/jpeg",
            "sha256": "HgsaKxQLWxp6Z6Xp1Ygz0Cn8bX1nOpKpJT1ll5gFd1c=",
            "id": "1003383421387256",
        },
    }
    document = {
        "from": "16505551234",
        "id": WAMID_DOCUMENT,
        "timestamp": "1739321160",
        "type": "document",
        "document": {
            "filename": "invoice-4711.pdf",
            "mime_type": "application/pdf",
            "sha256": "K2JQK0aAIcKy4lhvlCsLQnlCsS2YjL8W9dTYxg6bVVU=",
            "id": "1298710614482405",
        },
    }
    answer = await post(gateway, notification(image, document))

    assert answer.status_code == 200, answer.text
    photo, pdf = await gateway.inbound(2)
    assert photo.content.text == "The label on the box"
    [picture] = photo.content.attachments
    assert (picture.content_type, picture.url) == ("image/jpeg", f"{GRAPH}/1003383421387256")
    assert pdf.content.text == "invoice-4711.pdf"
    [attachment] = pdf.content.attachments
    assert (attachment.filename, attachment.content_type) == ("invoice-4711.pdf", "application/pdf")
    assert attachment.url == f"{GRAPH}/1298710614482405"


async def test_button_replies_and_locations_become_text(gateway) -> None:  # type: ignore[no-untyped-def]
    button = {
        "context": {"from": "15550783881", "id": WAMID_OURS},
        "from": "16505551234",
        "id": WAMID_BUTTON,
        "timestamp": "1739321024",
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": "cancel-button", "title": "Cancel my order"},
        },
    }
    location = {
        "from": "16505551234",
        "id": WAMID_LOCATION,
        "timestamp": "1739321030",
        "type": "location",
        "location": {
            "address": "1 Hacker Way, Menlo Park, CA 94025",
            "latitude": 37.483307,
            "longitude": -122.148981,
            "name": "Philz Coffee",
        },
    }
    answer = await post(gateway, notification(button, location))

    assert answer.status_code == 200, answer.text
    reply, place = await gateway.inbound(2)
    assert reply.content.text == "Cancel my order"
    assert reply.provider.in_reply_to == WAMID_OURS
    assert place.content.text == (
        "Location: Philz Coffee, 1 Hacker Way, Menlo Park, CA 94025 (37.483307, -122.148981)"
    )


async def test_delivery_statuses_are_acknowledged_but_not_published(gateway) -> None:  # type: ignore[no-untyped-def]
    status = {
        "id": WAMID_OURS,
        "status": "delivered",
        "timestamp": "1739321200",
        "recipient_id": "16505551234",
        "conversation": {"id": "CONVERSATION_ID", "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
    }
    answer = await post(gateway, notification(statuses=(status,)))

    assert answer.status_code == 200, answer.text
    events = await only_published_is_the_next_message(gateway)
    assert [e.provider.message_id for e in events] == ["wamid.SENTINEL"]


async def test_other_objects_and_fields_are_acknowledged_but_not_published(gateway) -> None:  # type: ignore[no-untyped-def]
    page = {"object": "page", "entry": [{"id": "1", "time": 1739321024, "messaging": []}]}
    account_update = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "account_update",
                        "value": {"event": "VERIFIED_ACCOUNT"},
                    }
                ],
            }
        ],
    }
    for payload in (page, account_update):
        answer = await post(gateway, payload)
        assert answer.status_code == 200, answer.text
    events = await only_published_is_the_next_message(gateway)
    assert [e.provider.message_id for e in events] == ["wamid.SENTINEL"]


async def test_a_provider_retry_is_acknowledged_but_published_once(gateway) -> None:  # type: ignore[no-untyped-def]
    payload = notification(text_message(WAMID_TEXT, "Where is my refund?"))
    for _ in range(3):
        answer = await post(gateway, payload)
        assert answer.status_code == 200
    events = await only_published_is_the_next_message(gateway)
    assert [e.provider.message_id for e in events] == [WAMID_TEXT, "wamid.SENTINEL"]


async def test_an_unreadable_message_is_422_and_dead_lettered_after_its_siblings(gateway) -> None:  # type: ignore[no-untyped-def]
    broken = text_message(WAMID_SECOND, "no sender")
    del broken["from"]
    payload = notification(text_message(WAMID_TEXT, "fine"), broken)
    body = json.dumps(payload).encode()
    answer = await gateway.client.post(PATH, content=body, headers=signed(body))

    assert answer.status_code == 422
    assert answer.json()["detail"] == f"{WAMID_SECOND}: WhatsApp message without from"
    [letter] = await gateway.dead_letters(1)
    assert letter.original_value() == body
    assert letter.headers == {"provider": "meta"}
    [event] = await gateway.inbound(1)
    assert event.provider.message_id == WAMID_TEXT


async def test_a_body_that_is_not_json_is_422_and_dead_lettered(gateway) -> None:  # type: ignore[no-untyped-def]
    body = b"entry=1&object=whatsapp_business_account"
    answer = await gateway.client.post(PATH, content=body, headers=signed(body))

    assert answer.status_code == 422
    [letter] = await gateway.dead_letters(1)
    assert letter.original_value() == body
    assert "not JSON" in letter.reason
