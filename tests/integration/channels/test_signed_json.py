"""The generic signed JSON endpoint: signatures computed independently, real Kafka."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from omnirouter.events import Channel, IdentifierKind, InteractionEvent, InteractionKind
from omnirouter.ingress.app import create_ingress_app

pytestmark = pytest.mark.integration

SECRET = b"crm-shared-secret"
PATH = "/webhooks/signed/crm"
INTERACTION = {
    "message_id": "crm-4711",
    "channel": "api",
    "occurred_at": "2026-01-05T09:30:00Z",
    "identifiers": [
        {"kind": "email", "value": "Ana.Lima@example.com"},
        {"kind": "account_number", "value": "ACC-0042"},
    ],
    "display_name": "Ana Lima",
    "text": "Ticket #4711 reopened: refund still missing",
    "subject": "Refund",
    "attributes": {"tier": "gold"},
}


def signed(body: bytes, *, at: int | None = None, secret: bytes = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Omnirouter-Timestamp": timestamp,
        "X-Omnirouter-Signature": f"sha256={digest}",
    }


async def post(gateway, payload: dict[str, Any], path: str = PATH, **signing: Any):  # type: ignore[no-untyped-def]
    body = json.dumps(payload).encode()
    return await gateway.client.post(path, content=body, headers=signed(body, **signing))


async def published_through_sentinel(gateway) -> list[InteractionEvent]:  # type: ignore[no-untyped-def]
    """Publish a sentinel interaction; return everything on the topic up to and including it.

    The topic has one partition, so anything published before the sentinel is read first.
    """
    sentinel = {"message_id": "sentinel", "identifiers": [{"kind": "email", "value": "s@x.io"}]}
    answer = await post(gateway, sentinel)
    assert answer.status_code == 200, answer.text
    topic = gateway.topic("interactions.inbound")

    def through_sentinel(reader) -> list[InteractionEvent] | None:  # type: ignore[no-untyped-def]
        events: list[InteractionEvent] = reader.decoded(topic, InteractionEvent)
        return events if any(e.provider.message_id == "sentinel" for e in events) else None

    events: list[InteractionEvent] = await gateway.reader.wait_for(
        through_sentinel, what="the sentinel interaction"
    )
    return events


async def test_a_signed_interaction_is_published_as_described(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await post(gateway, INTERACTION)

    assert answer.status_code == 200, answer.text
    [event] = await gateway.inbound(1)
    assert answer.json() == {"event_id": str(event.event_id), "duplicate": False}
    assert event.channel is Channel.API
    assert event.kind is InteractionKind.MESSAGE
    assert [(i.kind, i.value) for i in event.identifiers] == [
        (IdentifierKind.EMAIL, "Ana.Lima@example.com"),
        (IdentifierKind.ACCOUNT_NUMBER, "ACC-0042"),
    ]
    assert event.occurred_at == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert event.display_name == "Ana Lima"
    assert (event.content.text, event.content.subject) == (INTERACTION["text"], "Refund")
    assert event.attributes == {"tier": "gold"}
    assert (event.provider.provider, event.provider.message_id) == ("crm", "crm-4711")


async def test_a_retry_is_acknowledged_but_published_once(gateway) -> None:  # type: ignore[no-untyped-def]
    answers = [await post(gateway, INTERACTION) for _ in range(3)]

    assert [a.status_code for a in answers] == [200] * 3
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == ["crm-4711", "sentinel"]


async def test_bad_credentials_are_refused(gateway) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(INTERACTION).encode()
    headers = signed(body)
    missing_signature = {k: v for k, v in headers.items() if k != "X-Omnirouter-Signature"}
    missing_timestamp = {k: v for k, v in headers.items() if k != "X-Omnirouter-Timestamp"}
    answers = {
        "missing signature": await gateway.client.post(
            PATH, content=body, headers=missing_signature
        ),
        "missing timestamp": await gateway.client.post(
            PATH, content=body, headers=missing_timestamp
        ),
        "stale": await post(gateway, INTERACTION, at=int(time.time()) - 301),
        "from the future": await post(gateway, INTERACTION, at=int(time.time()) + 301),
        "wrong secret": await post(gateway, INTERACTION, secret=b"not-the-secret"),
        "tampered": await gateway.client.post(
            PATH, content=body.replace(b"refund", b"rebate"), headers=headers
        ),
        "unknown key": await post(gateway, INTERACTION, path="/webhooks/signed/erp"),
    }

    assert {what: a.status_code for what, a in answers.items()} == {
        "missing signature": 401,
        "missing timestamp": 401,
        "stale": 401,
        "from the future": 401,
        "wrong secret": 403,
        "tampered": 403,
        "unknown key": 403,
    }
    assert "stale" in answers["stale"].json()["detail"]
    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == ["sentinel"]


async def test_the_endpoint_is_closed_without_signing_secrets(gateway) -> None:  # type: ignore[no-untyped-def]
    ingress = gateway.settings.ingress.model_copy(update={"signing_secrets": {}})
    settings = gateway.settings.model_copy(update={"ingress": ingress})
    app = create_ingress_app(dataclasses.replace(gateway.context, settings=settings))
    body = json.dumps(INTERACTION).encode()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://cx.example.com"
    ) as client:
        answer = await client.post(PATH, content=body, headers=signed(body))
    assert answer.status_code == 503


async def test_a_body_that_is_no_interaction_is_422_and_dead_lettered(gateway) -> None:  # type: ignore[no-untyped-def]
    payload = {**INTERACTION, "identifiers": [], "colour": "blue"}
    body = json.dumps(payload).encode()
    answer = await gateway.client.post(PATH, content=body, headers=signed(body))

    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "identifiers" in detail and "colour" in detail
    [letter] = await gateway.dead_letters(1)
    assert letter.original_value() == body
    assert letter.reason == detail


# The production body limit (2 MB), above a Kafka record's 1 MiB.
@pytest.mark.parametrize("gateway", [{"max_body_bytes": 2_000_000}], indirect=True)
async def test_an_event_too_big_for_kafka_is_413_and_dead_lettered_truncated(gateway) -> None:  # type: ignore[no-untyped-def]
    """Within the contract's text limit (chars) and the body limit, but over a Kafka record in
    UTF-8 bytes: no retry could ever store it, so not 503 (retried forever) but 413, and kept."""
    text = "é" * 600_000  # 600,000 characters, 1.2 MB in UTF-8
    payload = {**INTERACTION, "message_id": "too-big", "text": text}
    body = json.dumps(payload, ensure_ascii=False).encode()
    answer = await gateway.client.post(PATH, content=body, headers=signed(body))

    assert answer.status_code == 413, answer.text
    assert "the event store takes at most" in answer.json()["detail"]
    [letter] = await gateway.dead_letters(1)
    assert letter.stage == "ingress" and letter.error_type == "EventTooLarge"
    assert letter.headers["truncated"] == "true"
    kept = letter.original_value()
    assert int(letter.headers["original_bytes"]) > 1_200_000 > 64 * 1024 == len(kept)
    assert kept.startswith(b'{"event_id":')  # the start of the event, for a human to read
    # Nothing reached the inbound topic but the sentinel.
    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == ["sentinel"]
