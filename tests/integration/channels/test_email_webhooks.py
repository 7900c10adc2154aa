"""Inbound e-mail webhooks (SendGrid Inbound Parse, Mailgun routes) on the real stack."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from omnirouter.events import Channel, IdentifierKind
from omnirouter.ingress.app import create_ingress_app
from omnirouter.ingress.context import ChannelContext
from omnirouter.ingress.publishing import provider_event_id
from omnirouter.settings import IngressSettings

pytestmark = pytest.mark.integration

SENDGRID = "/webhooks/email/sendgrid"
MAILGUN = "/webhooks/email/mailgun"
TOKEN = "sendgrid-shared-token"
SIGNING_KEY = "key-mailgun-signing"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8

THREAD_HEADERS = (
    "Received: from mail.example.com by mx.sendgrid.net\n"
    "From: Ana Lima <ana@example.com>\n"
    "To: support@cx.example.com\n"
    "Subject: Re: Order 1042 never arrived\n"
    "Date: Mon, 02 Mar 2026 10:15:00 +0100\n"
    "Message-ID: <reply-2@mail.example.com>\n"
    "In-Reply-To: <ticket-1@cx.example.com>\n"
    "References: <root@mail.example.com>\n <ticket-1@cx.example.com>\n"
)


def sendgrid_fields(**overrides: Any) -> dict[str, Any]:
    """The fields SendGrid's Inbound Parse posts in parsed mode, as documented."""
    fields: dict[str, Any] = {
        "headers": THREAD_HEADERS,
        "dkim": "{@example.com : pass}",
        "to": "support@cx.example.com",
        "from": "Ana Lima <ana@example.com>",
        "subject": "Re: Order 1042 never arrived",
        "text": "Still nothing, and the tracking page is blank.",
        "html": "<p>Still nothing, and the tracking page is blank.</p>",
        "sender_ip": "203.0.113.7",
        "envelope": json.dumps({"to": ["support@cx.example.com"], "from": "ana@example.com"}),
        "attachments": "1",
        "attachment-info": json.dumps(
            {"attachment1": {"filename": "parcel.jpg", "name": "parcel.jpg", "type": "image/jpeg"}}
        ),
        "charsets": json.dumps(
            {"to": "UTF-8", "html": "UTF-8", "subject": "UTF-8", "from": "UTF-8", "text": "UTF-8"}
        ),
        "SPF": "pass",
    }
    fields.update(overrides)
    return fields


def mailgun_signed(timestamp: float | None = None, key: str = SIGNING_KEY) -> dict[str, str]:
    stamp = str(int(time.time() if timestamp is None else timestamp))
    token = hashlib.sha256(stamp.encode()).hexdigest()[:50]
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": signature}


def mailgun_fields(**overrides: Any) -> dict[str, Any]:
    """The fields a Mailgun route's forward() posts, as documented."""
    headers = [
        ["From", "Ana Lima <ana@example.com>"],
        ["Subject", "Re: Order 1042 never arrived"],
        ["Date", "Mon, 02 Mar 2026 10:15:00 +0100"],
        ["Message-Id", "<mg-reply-3@mail.example.com>"],
        ["In-Reply-To", "<ticket-1@cx.example.com>"],
        ["References", "<root@mail.example.com> <ticket-1@cx.example.com>"],
    ]
    fields: dict[str, Any] = {
        "recipient": "support@cx.example.com",
        "sender": "ana@example.com",
        "from": "Ana Lima <ana@example.com>",
        "subject": "Re: Order 1042 never arrived",
        "body-plain": "Any news?\n\n> earlier message",
        "stripped-text": "Any news?",
        "body-html": "<p>Any news?</p>",
        "Message-Id": "<mg-reply-3@mail.example.com>",
        "message-headers": json.dumps(headers),
        "attachment-count": "0",
        **mailgun_signed(),
    }
    fields.update(overrides)
    return fields


async def post_sendgrid(
    gateway: Any, fields: dict[str, Any], files: Any = None, token: str | None = TOKEN
) -> httpx.Response:
    params = {} if token is None else {"token": token}
    # SendGrid always posts multipart/form-data; httpx only does with a file in it.
    files = files or {"attachment-none": ("", b"", "application/octet-stream")}
    response: httpx.Response = await gateway.client.post(
        SENDGRID, params=params, data=fields, files=files
    )
    return response


# --- SendGrid -----------------------------------------------------------------------------


async def test_a_sendgrid_parsed_post_is_published_with_threading_and_attachment(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await post_sendgrid(
        gateway, sendgrid_fields(), {"attachment1": ("parcel.jpg", PHOTO, "image/jpeg")}
    )

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert answer.json() == {"event_id": str(event.event_id), "duplicate": False}
    assert event.channel is Channel.EMAIL
    assert [(i.kind, i.value) for i in event.identifiers] == [
        (IdentifierKind.EMAIL, "ana@example.com")
    ]
    assert event.display_name == "Ana Lima"
    assert event.content.subject == "Re: Order 1042 never arrived"
    assert event.content.text == "Still nothing, and the tracking page is blank."
    assert [(a.filename, a.content_type, a.size_bytes) for a in event.content.attachments] == [
        ("parcel.jpg", "image/jpeg", len(PHOTO))
    ]
    assert event.provider.provider == "sendgrid"
    assert event.provider.message_id == "<reply-2@mail.example.com>"
    assert event.provider.in_reply_to == "<ticket-1@cx.example.com>"
    assert event.provider.references == ("<root@mail.example.com>", "<ticket-1@cx.example.com>")
    assert event.event_id == provider_event_id("sendgrid", "<reply-2@mail.example.com>")


async def test_a_sendgrid_raw_post_is_parsed_from_the_mime_message(gateway) -> None:  # type: ignore[no-untyped-def]
    raw = (
        b"From: =?iso-8859-1?q?Jos=E9?= <jose@example.com>\r\n"
        b"Subject: =?utf-8?q?R=C3=A9clamation?=\r\n"
        b"Message-ID: <raw-7@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nJ'ai command=E9 deux fois."
    )
    fields = {
        "email": raw,
        "to": "support@cx.example.com",
        "from": "jose@example.com",
        "envelope": json.dumps({"to": ["support@cx.example.com"], "from": "jose@example.com"}),
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8"}),
    }
    answer = await post_sendgrid(gateway, fields)

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert (event.display_name, event.content.subject) == ("José", "Réclamation")
    assert event.content.text == "J'ai commandé deux fois."
    assert event.provider.message_id == "<raw-7@example.com>"


async def test_a_sendgrid_html_only_mail_gets_its_text_from_the_html(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = sendgrid_fields(
        html="<html><style>p{}</style><body><p>Card declined</p><p>twice</p></body></html>"
    )
    del fields["text"]
    answer = await post_sendgrid(gateway, fields)

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert event.content.text == "Card declined\n\ntwice"
    assert event.content.html is not None and event.content.html.startswith("<html>")


async def test_sendgrid_needs_the_shared_token(gateway) -> None:  # type: ignore[no-untyped-def]
    missing = await post_sendgrid(gateway, sendgrid_fields(), token=None)
    wrong = await post_sendgrid(gateway, sendgrid_fields(), token=TOKEN + "x")

    assert (missing.status_code, wrong.status_code) == (401, 403)
    await gateway.reader.poll()
    assert gateway.reader.on(gateway.topic("interactions.inbound")) == []
    assert gateway.reader.on(gateway.topic("deadletter")) == []


async def test_a_sendgrid_retry_is_acknowledged_but_published_once(gateway) -> None:  # type: ignore[no-untyped-def]
    answers = [await post_sendgrid(gateway, sendgrid_fields()) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    await gateway.inbound(1)
    await gateway.reader.poll()
    assert len(gateway.reader.on(gateway.topic("interactions.inbound"))) == 1


async def test_a_mail_without_from_is_422_and_dead_lettered_with_the_raw_body(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = sendgrid_fields(headers="To: support@cx.example.com\nSubject: who am I\n")
    del fields["from"]
    request = gateway.client.build_request(
        "POST",
        SENDGRID,
        params={"token": TOKEN},
        data=fields,
        files={"x": ("", b"", "text/plain")},
    )
    body = request.read()
    answer = await gateway.client.send(request)

    assert answer.status_code == 422
    assert answer.json()["detail"] == "SendGrid message without a From address"
    [letter] = await gateway.dead_letters(1)
    assert (letter.stage, letter.reason) == ("ingress", "SendGrid message without a From address")
    assert letter.headers == {"provider": "sendgrid"}
    assert letter.original_value() == body
    await gateway.reader.poll()
    assert gateway.reader.on(gateway.topic("interactions.inbound")) == []


async def test_a_body_past_the_size_limit_is_413(gateway) -> None:  # type: ignore[no-untyped-def]
    big = {"attachment1": ("big.bin", b"x" * 300_000, "application/octet-stream")}
    answer = await post_sendgrid(gateway, sendgrid_fields(), big)

    assert answer.status_code == 413


async def test_providers_without_a_configured_secret_are_closed(gateway) -> None:  # type: ignore[no-untyped-def]
    closed = gateway.settings.model_copy(
        update={"ingress": IngressSettings(max_body_bytes=200_000)}
    )
    context = ChannelContext(gateway.context.intake, closed, gateway.context.redis)
    transport = httpx.ASGITransport(app=create_ingress_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="https://cx.example.com") as client:
        sendgrid = await client.post(SENDGRID, params={"token": TOKEN}, data=sendgrid_fields())
        mailgun = await client.post(MAILGUN, data=mailgun_fields())

    assert (sendgrid.status_code, mailgun.status_code) == (503, 503)


# --- Mailgun ------------------------------------------------------------------------------


async def test_a_signed_mailgun_post_is_published_with_threading(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = mailgun_fields(
        **{"attachment-count": "1", "content-id-map": json.dumps({"<p1@x>": "attachment-1"})}
    )
    answer = await gateway.client.post(
        MAILGUN, data=fields, files={"attachment-1": ("parcel.jpg", PHOTO, "image/jpeg")}
    )

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert event.identifiers[0].value == "ana@example.com"
    assert event.content.text == "Any news?\n\n> earlier message"
    assert event.content.html == "<p>Any news?</p>"
    assert [(a.filename, a.size_bytes, a.content_id) for a in event.content.attachments] == [
        ("parcel.jpg", len(PHOTO), "p1@x")
    ]
    refs = event.provider
    assert (refs.provider, refs.message_id, refs.in_reply_to) == (
        "mailgun",
        "<mg-reply-3@mail.example.com>",
        "<ticket-1@cx.example.com>",
    )
    assert refs.references == ("<root@mail.example.com>", "<ticket-1@cx.example.com>")


async def test_a_mailgun_post_without_attachments_comes_urlencoded(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(MAILGUN, data=mailgun_fields())

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert event.content.subject == "Re: Order 1042 never arrived"


@pytest.mark.parametrize(
    ("signature", "status"),
    [
        ({"signature": ""}, 401),
        ({"timestamp": "", "token": "", "signature": ""}, 401),
        (mailgun_signed(key="some-other-key"), 403),
        ({"signature": "0" * 64}, 403),
        (mailgun_signed(timestamp=time.time() - 3600), 403),  # replayed an hour later
        (mailgun_signed(timestamp=time.time() + 3600), 403),
    ],
)
async def test_mailgun_posts_need_a_valid_fresh_signature(gateway, signature, status) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(MAILGUN, data=mailgun_fields(**signature))

    assert answer.status_code == status
    await gateway.reader.poll()
    assert gateway.reader.on(gateway.topic("interactions.inbound")) == []
    assert gateway.reader.on(gateway.topic("deadletter")) == []


async def test_unsigned_garbage_is_refused_without_a_dead_letter(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await gateway.client.post(
        MAILGUN, content=b"\x00\xff not a form", headers={"content-type": "application/json"}
    )

    assert answer.status_code == 401
    await gateway.reader.poll()
    assert gateway.reader.on(gateway.topic("deadletter")) == []


async def test_a_signed_mailgun_post_without_sender_is_dead_lettered_and_not_retried(
    gateway,
) -> None:  # type: ignore[no-untyped-def]
    fields = mailgun_fields(**{"message-headers": "[]"})
    del fields["from"]
    answer = await gateway.client.post(MAILGUN, data=fields)

    # 406 is the answer Mailgun does not retry; anything else but 200 it retries for 8 hours.
    assert answer.status_code == 406
    [letter] = await gateway.dead_letters(1)
    assert letter.reason == "Mailgun message without a From address"
    assert letter.headers == {"provider": "mailgun"}
