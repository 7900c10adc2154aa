"""Web form submissions (JSON, urlencoded, multipart) through the gateway to real Kafka."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from omnirouter.events import Channel, InteractionEvent, InteractionKind
from omnirouter.ingress.app import create_ingress_app

pytestmark = pytest.mark.integration

CONTACT = "/forms/contact-us"
SUBMISSION = {
    "name": "Ana Lima",
    "email": "Ana.Lima@example.com",
    "phone": "+1 (555) 010-2345",
    "subject": "Parcel never arrived",
    "message": "I ordered on Monday and nothing came.",
    "order_number": "4711",
}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


async def published_through_sentinel(gateway) -> list[InteractionEvent]:  # type: ignore[no-untyped-def]
    """Publish a sentinel submission; return everything on the topic up to and including it.

    The topic has one partition, so anything published before the sentinel is read first.
    """
    answer = await gateway.client.post(
        "/forms/sentinel", json={"email": "sentinel@example.com", "message": "sentinel"}
    )
    assert answer.status_code == 200
    topic = gateway.topic("interactions.inbound")

    def through_sentinel(reader) -> list[InteractionEvent] | None:  # type: ignore[no-untyped-def]
        events: list[InteractionEvent] = reader.decoded(topic, InteractionEvent)
        return events if any(e.provider.conversation_id == "sentinel" for e in events) else None

    events: list[InteractionEvent] = await gateway.reader.wait_for(
        through_sentinel, what="the sentinel submission"
    )
    return events


@pytest.fixture
async def restricted(gateway) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """A client of the same gateway with forms allowed only from shop.example.com pages."""
    ingress = gateway.settings.ingress.model_copy(
        update={"form_allowed_origins": ("shop.example.com", "https://www.example.com")}
    )
    settings = gateway.settings.model_copy(update={"ingress": ingress})
    app = create_ingress_app(dataclasses.replace(gateway.context, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://cx.example.com"
    ) as client:
        yield client


async def test_a_json_submission_is_published_with_contact_and_fields(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(CONTACT, json=SUBMISSION)

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert event.channel is Channel.WEBFORM
    assert event.kind is InteractionKind.FORM_SUBMISSION
    assert [i.address for i in event.identifiers] == [
        "email:Ana.Lima@example.com",
        "phone:+1 (555) 010-2345",
    ]
    assert event.display_name == "Ana Lima"
    assert event.content.subject == "Parcel never arrived"
    assert event.content.text == "I ordered on Monday and nothing came.\n\norder_number: 4711"
    assert event.attributes == {}
    assert event.provider.conversation_id == "contact-us"


async def test_an_urlencoded_submission_resubmitted_is_published_once(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = {**SUBMISSION, "submission_id": "b7f3c1d2", "topics": "billing"}
    body = urlencode([*fields.items(), ("topics", "delivery")])
    for _ in range(2):
        answer = await gateway.client.post(CONTACT, content=body, headers=URLENCODED)
        assert answer.status_code == 200, answer.text

    events = await published_through_sentinel(gateway)
    first, sentinel = events
    assert first.provider.message_id == "contact-us:b7f3c1d2"
    assert first.content.text.endswith("order_number: 4711\ntopics: billing, delivery")
    assert "submission_id" not in first.content.text
    assert sentinel.provider.conversation_id == "sentinel"


async def test_a_multipart_submission_names_its_uploaded_file(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(
        CONTACT,
        data={"name": "Ben", "phone": "+447700900123", "message": "Label attached"},
        files={"label": ("label.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf")},
    )

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert [i.address for i in event.identifiers] == ["phone:+447700900123"]
    assert event.content.text == "Label attached\n\nlabel: label.pdf (15 bytes, file not kept)"


async def test_a_submission_without_email_or_phone_is_422_and_dead_lettered(gateway) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"name": "Anonymous", "message": "call me", "email": "  "}).encode()
    answer = await gateway.client.post(
        CONTACT, content=body, headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 422
    assert answer.json()["detail"] == "form submission without email or phone"
    [letter] = await gateway.dead_letters(1)
    assert letter.reason == "form submission without email or phone"
    assert letter.original_value() == body
    assert letter.headers == {"provider": "webform"}


async def test_a_body_in_no_form_encoding_is_415(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(
        CONTACT, content=b"email=ana@example.com", headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 415


async def test_pages_off_the_allow_list_may_not_post(gateway, restricted) -> None:  # type: ignore[no-untyped-def]
    from_shop = await restricted.post(
        CONTACT, json=SUBMISSION, headers={"Origin": "https://shop.example.com"}
    )
    by_referer = await restricted.post(
        "/forms/newsletter",
        json={"email": "ben@example.com"},
        headers={"Referer": "https://www.example.com/contact?x=1"},
    )
    elsewhere = await restricted.post(
        CONTACT, json=SUBMISSION, headers={"Origin": "https://evil.example.net"}
    )
    wrong_scheme = await restricted.post(
        CONTACT, json=SUBMISSION, headers={"Origin": "http://www.example.com"}
    )
    no_header = await restricted.post(CONTACT, json=SUBMISSION)

    assert from_shop.status_code == 200, from_shop.text
    assert by_referer.status_code == 200, by_referer.text
    assert [elsewhere.status_code, wrong_scheme.status_code, no_header.status_code] == [403] * 3
    events = await published_through_sentinel(gateway)
    assert [e.provider.conversation_id for e in events] == ["contact-us", "newsletter", "sentinel"]
