"""Nobody gets in unsigned: every webhook route refuses a missing or wrong signature, and a
stale timestamp where the scheme signs one, and writes nothing to Kafka; schemes without a
timestamp (Twilio, Meta, SendGrid's shared token) are replay-safe through deduplication.

The table below names every route the gateway mounts; a route added without a row fails
``test_every_route_the_gateway_mounts_is_in_the_table``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

import pytest
from fastapi.routing import APIRoute
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from integration.security.surfaces import PUBLIC_URL, SECRETS, SHOP, Gateway
from omnirouter.channels.email.webhooks import mailgun_signature
from omnirouter.channels.meta_whatsapp.signature import meta_signature
from omnirouter.channels.signed_json.signature import signed_json_signature
from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.events import InteractionEvent
from omnirouter.ingress.app import channel_routers
from support.served_gateway import served_gateway

pytestmark = pytest.mark.integration

Variant = Literal["valid", "missing", "wrong", "stale"]
STALE_S = 3600  # far outside the default 300 s tolerance, in the past (a captured request)
WRONG_KEY = "not-the-configured-secret-00000000"


@dataclass(frozen=True)
class Attempt:
    """One HTTP request to a webhook, and the provider message id its event would carry."""

    method: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = ""


def secret(name: str) -> str:
    return str(SECRETS[name].get_secret_value())


# --- one builder per scheme -----------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def twilio(
    path: str, fields_for: Callable[[str], dict[str, str]], id_of: Callable[[str], str]
) -> Callable[[str, Variant], Attempt]:
    def build(uid: str, variant: Variant) -> Attempt:
        fields = fields_for(uid)
        url = f"{PUBLIC_URL}{path}"
        key = WRONG_KEY if variant == "wrong" else secret("twilio_auth_token")
        headers = dict(FORM)
        if variant != "missing":
            headers["X-Twilio-Signature"] = twilio_signature(key, url, fields.items())
        return Attempt("POST", path, urlencode(fields).encode(), headers, id_of(uid))

    return build


def sms(uid: str) -> dict[str, str]:
    return {"MessageSid": f"SM{uid}", "From": "+15550102345", "To": "+15017122661", "Body": "hi"}


def call(uid: str) -> dict[str, str]:
    return {
        "CallSid": f"CA{uid}",
        "CallStatus": "completed",
        "From": "+15550102345",
        "To": "+15017122661",
        "Direction": "inbound",
    }


def transcript(uid: str) -> dict[str, str]:
    return {
        "TranscriptionSid": f"TR{uid}",
        "TranscriptionStatus": "completed",
        "TranscriptionText": "call me back",
        "CallSid": f"CA{uid}",
        "From": "+15550102345",
    }


def meta(uid: str, variant: Variant) -> Attempt:
    wamid = f"wamid.{uid}"
    message = {"from": "16505551234", "id": wamid, "type": "text", "text": {"body": "hi"}}
    value = {"messaging_product": "whatsapp", "messages": [message]}
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    if variant != "missing":
        key = WRONG_KEY if variant == "wrong" else secret("meta_app_secret")
        headers["X-Hub-Signature-256"] = meta_signature(key, body)
    return Attempt("POST", "/webhooks/meta/whatsapp", body, headers, wamid)


def sendgrid(uid: str, variant: Variant) -> Attempt:
    fields = {
        "headers": f"From: Ana <ana@example.com>\nMessage-ID: <{uid}@example.com>\n",
        "from": "Ana <ana@example.com>",
        "subject": "Order",
        "text": "Where is it?",
    }
    query = {"missing": "", "wrong": f"?token={WRONG_KEY}"}.get(
        variant, f"?token={secret('sendgrid_token')}"
    )
    body = urlencode(fields).encode()
    return Attempt("POST", f"/webhooks/email/sendgrid{query}", body, FORM, f"<{uid}@example.com>")


def mailgun(uid: str, variant: Variant) -> Attempt:
    fields = {
        "from": "Ana <ana@example.com>",
        "subject": "Order",
        "body-plain": "Where is it?",
        "Message-Id": f"<{uid}@example.com>",
    }
    if variant != "missing":
        timestamp = str(int(time.time()) - (STALE_S if variant == "stale" else 0))
        token = uuid.uuid4().hex
        key = WRONG_KEY if variant == "wrong" else secret("mailgun_signing_key")
        signature = mailgun_signature(key, timestamp, token)
        fields |= {"timestamp": timestamp, "token": token, "signature": signature}
    body = urlencode(fields).encode()
    return Attempt("POST", "/webhooks/email/mailgun", body, FORM, f"<{uid}@example.com>")


def signed_json(uid: str, variant: Variant) -> Attempt:
    body = json.dumps(
        {"message_id": uid, "identifiers": [{"kind": "email", "value": "ana@example.com"}]}
    ).encode()
    headers = {"Content-Type": "application/json"}
    if variant != "missing":
        timestamp = str(int(time.time()) - (STALE_S if variant == "stale" else 0))
        key = (
            WRONG_KEY
            if variant == "wrong"
            else str(SECRETS["signing_secrets"]["crm"].get_secret_value())
        )
        headers["X-Omnirouter-Timestamp"] = timestamp
        headers["X-Omnirouter-Signature"] = signed_json_signature(key, timestamp, body)
    return Attempt("POST", "/webhooks/signed/crm", body, headers, uid)


def webform(uid: str, variant: Variant) -> Attempt:
    """Web forms are public (browsers post them): the origin allow-list is their only gate."""
    body = urlencode({"email": "ana@example.com", "message": "hi", "submission_id": uid}).encode()
    headers = dict(FORM)
    if variant == "valid":
        headers["Origin"] = SHOP
    elif variant == "wrong":
        headers["Origin"] = "https://evil.example.com"
        headers["Referer"] = f"{SHOP}/contact"  # Origin wins: a Referer cannot launder a post
    return Attempt("POST", "/forms/contact", body, headers, f"contact:{uid}")


@dataclass(frozen=True)
class Scheme:
    """How one webhook route authenticates, and how to build requests for it."""

    build: Callable[[str, Variant], Attempt]
    timestamped: bool = False


SCHEMES: dict[tuple[str, str], Scheme] = {
    ("POST", "/webhooks/twilio/messages"): Scheme(
        twilio("/webhooks/twilio/messages", sms, lambda uid: f"SM{uid}")
    ),
    ("POST", "/webhooks/twilio/voice/status"): Scheme(
        twilio("/webhooks/twilio/voice/status", call, lambda uid: f"CA{uid}:completed")
    ),
    ("POST", "/webhooks/twilio/voice/transcription"): Scheme(
        twilio("/webhooks/twilio/voice/transcription", transcript, lambda uid: f"TR{uid}")
    ),
    ("POST", "/webhooks/meta/whatsapp"): Scheme(meta),
    ("POST", "/webhooks/email/sendgrid"): Scheme(sendgrid),
    ("POST", "/webhooks/email/mailgun"): Scheme(mailgun, timestamped=True),
    ("POST", "/webhooks/signed/{key_id}"): Scheme(signed_json, timestamped=True),
    ("POST", "/forms/{form_id}"): Scheme(webform),
}
# Routes with a test of their own below (no Kafka write to check), and public assets.
HANDSHAKES = {("GET", "/webhooks/meta/whatsapp"), ("WS", "/chat/ws")}
PUBLIC = {("GET", "/chat/widget.js"), ("GET", "/chat/demo")}


def mounted_routes(gateway: Gateway) -> set[tuple[str, str]]:
    """Every (method, path) of the channel routers the gateway app mounts."""
    found = set()
    routes = [route for router in channel_routers(gateway.context) for route in router.routes]
    for route in routes:
        if isinstance(route, APIRoute) and not route.path.startswith(("/docs", "/openapi")):
            found |= {(method, route.path) for method in route.methods if method != "HEAD"}
        elif isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
    return found


async def send(gateway: Gateway, attempt: Attempt) -> tuple[int, str]:
    answer = await gateway.client.request(
        attempt.method, attempt.url, content=attempt.body, headers=attempt.headers
    )
    detail = answer.json().get("detail", "") if answer.status_code >= 400 else ""
    return answer.status_code, str(detail)


async def published_through(gateway: Gateway, sentinel: str) -> list[str]:
    """Provider message ids on the inbound topic, up to and including ``sentinel``'s.

    One partition, one producer, every write acknowledged before its answer: anything an
    earlier request had written is on the topic before the sentinel's event.
    """

    def ids(reader) -> list[str] | None:  # type: ignore[no-untyped-def]
        seen = [
            e.provider.message_id or "" for e in reader.decoded(gateway.inbound, InteractionEvent)
        ]
        return seen if sentinel in seen else None

    return await gateway.reader.wait_for(ids, what=f"the sentinel {sentinel}")


def test_every_route_the_gateway_mounts_is_in_the_table(gateway: Gateway) -> None:
    assert mounted_routes(gateway) == set(SCHEMES) | HANDSHAKES | PUBLIC


@pytest.mark.parametrize("route", sorted(SCHEMES), ids=" ".join)
async def test_forged_and_stale_requests_are_refused_and_publish_nothing(
    gateway: Gateway, route: tuple[str, str]
) -> None:
    scheme = SCHEMES[route]
    variants: list[Variant] = ["missing", "wrong", *(["stale"] if scheme.timestamped else [])]
    for variant in variants:
        status, reason = await send(gateway, scheme.build(uuid.uuid4().hex, variant))
        assert status in (401, 403), f"{variant} answered {status}"
        assert reason, f"{variant}: a refusal says why"

    sentinel = scheme.build(uuid.uuid4().hex, "valid")
    status, reason = await send(gateway, sentinel)
    assert status == 200, reason
    assert await published_through(gateway, sentinel.message_id) == [sentinel.message_id]


@pytest.mark.parametrize("route", sorted(SCHEMES), ids=" ".join)
async def test_a_replayed_signed_request_is_published_once(
    gateway: Gateway, route: tuple[str, str]
) -> None:
    """Within a timestamp's window too: the copy is acknowledged (so the provider stops
    retrying) and deduplicated on the provider's message id."""
    scheme = SCHEMES[route]
    original = scheme.build(uuid.uuid4().hex, "valid")
    for _ in range(2):
        status, reason = await send(gateway, original)
        assert status == 200, reason

    sentinel = scheme.build(uuid.uuid4().hex, "valid")
    assert (await send(gateway, sentinel))[0] == 200
    published = await published_through(gateway, sentinel.message_id)
    assert published == [original.message_id, sentinel.message_id]


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.challenge": "42"},
        {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": WRONG_KEY},
    ],
    ids=["missing token", "wrong token"],
)
async def test_the_whatsapp_handshake_refuses_a_missing_or_wrong_verify_token(
    gateway: Gateway, params: dict[str, str]
) -> None:
    refused = await gateway.client.get("/webhooks/meta/whatsapp", params=params)
    assert refused.status_code == 403
    assert refused.json()["detail"]
    mine = {**params, "hub.verify_token": secret("meta_verify_token")}
    assert (await gateway.client.get("/webhooks/meta/whatsapp", params=mine)).text == "42"


async def handshake(address: str, origin: str | None) -> int:
    """The HTTP status of the chat socket's opening handshake (101: switched to WebSocket)."""
    url = f"ws://{address}/chat/ws?visitor_id=v-{uuid.uuid4().hex}"
    try:
        async with connect(url, origin=Origin(origin) if origin else None):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_the_chat_socket_refuses_pages_off_the_allow_list(gateway: Gateway) -> None:
    """The chat is anonymous by design (no token that could expire); the origin allow-list
    keeps other sites from embedding it."""
    with served_gateway(gateway.settings) as address:
        assert await handshake(address, None) == 403
        assert await handshake(address, "https://evil.example.com") == 403
        assert await handshake(address, SHOP) == 101
