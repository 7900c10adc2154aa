"""Signed JSON: the signature scheme and the interaction format (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.signed_json.normalize import dedupe_provider, normalize_interaction
from omnirouter.channels.signed_json.signature import (
    is_fresh,
    parse_timestamp,
    signature_matches,
    signed_json_signature,
)
from omnirouter.events import Channel, Direction, IdentifierKind, InteractionKind
from omnirouter.ingress.publishing import provider_event_id

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MINIMAL = {"identifiers": [{"kind": "email", "value": "ana@example.com"}]}


def body(**fields: Any) -> bytes:
    return json.dumps({**MINIMAL, **fields}).encode()


# --- signature ----------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    raw = b'{"identifiers":[]}'
    expected = hmac.new(b"s3cret", b"1767614400." + raw, hashlib.sha256).hexdigest()
    assert signed_json_signature("s3cret", "1767614400", raw) == f"sha256={expected}"
    assert signature_matches("s3cret", "1767614400", raw, f"sha256={expected}")


@pytest.mark.parametrize(
    ("timestamp", "raw", "secret"),
    [("1767614401", b"{}", "s3cret"), ("1767614400", b"{ }", "s3cret"), ("1767614400", b"{}", "x")],
)
def test_another_timestamp_body_or_secret_does_not_match(
    timestamp: str, raw: bytes, secret: str
) -> None:
    header = signed_json_signature("s3cret", "1767614400", b"{}")
    assert not signature_matches(secret, timestamp, raw, header)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("1767614400", 1767614400),
        (" 1767614400 ", 1767614400),
        ("-5", None),
        ("1.5", None),
        ("", None),
        ("١٢٣", None),
    ],
)
def test_timestamps_are_plain_unix_seconds(header: str, value: int | None) -> None:
    assert parse_timestamp(header) == value


def test_freshness_is_symmetric_within_the_tolerance() -> None:
    assert is_fresh(1000, 1300.0, 300)
    assert is_fresh(1300, 1000.0, 300)
    assert not is_fresh(1000, 1300.5, 300)
    assert not is_fresh(1301, 1000.0, 300)


# --- interactions -------------------------------------------------------------------------


def test_a_full_interaction_keeps_everything_it_says() -> None:
    raw = body(
        message_id="crm-4711",
        channel="email",
        kind="call",
        occurred_at="2026-01-04T08:00:00+01:00",
        identifiers=[
            {"kind": "email", "value": "Ana@Example.com"},
            {"kind": "social_handle", "value": "@ana", "provider": "twitter"},
        ],
        display_name="Ana",
        text="Called about refund",
        subject="Refund",
        thread_id="ticket-4711",
        in_reply_to="crm-4710",
        attributes={"tier": "gold", "language": "pt"},
    )
    event = normalize_interaction(raw, "crm", NOW)

    assert event.event_id == provider_event_id("signed:crm", "crm-4711")
    assert (event.channel, event.kind, event.direction) == (
        Channel.EMAIL,
        InteractionKind.CALL,
        Direction.INBOUND,
    )
    assert [i.address for i in event.identifiers] == [
        "email:Ana@Example.com",
        "social_handle:twitter:@ana",
    ]
    assert event.occurred_at == datetime(2026, 1, 4, 7, 0, tzinfo=UTC)
    assert (event.content.text, event.content.subject) == ("Called about refund", "Refund")
    assert event.provider.provider == "crm"
    assert (event.provider.thread_id, event.provider.in_reply_to) == ("ticket-4711", "crm-4710")
    assert event.attributes == {"tier": "gold", "language": "pt"}


def test_a_minimal_interaction_is_an_api_message_that_happened_now() -> None:
    event = normalize_interaction(body(), "crm", NOW)
    assert (event.channel, event.kind) == (Channel.API, InteractionKind.MESSAGE)
    assert event.identifiers[0].kind is IdentifierKind.EMAIL
    assert event.occurred_at == NOW
    assert event.provider.message_id is None
    assert normalize_interaction(body(), "crm", NOW).event_id != event.event_id


def test_message_ids_are_scoped_by_key_id() -> None:
    crm = normalize_interaction(body(message_id="42"), "crm", NOW)
    shop = normalize_interaction(body(message_id="42"), "shop", NOW)
    assert dedupe_provider("crm") != dedupe_provider("shop")
    assert crm.event_id != shop.event_id


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not a signed interaction"),
        (b"[]", "not a signed interaction"),
        (json.dumps({"text": "hi"}).encode(), "identifiers: Field required"),
        (body(identifiers=[]), "identifiers"),
        (body(colour="blue"), "colour: Extra inputs are not permitted"),
        (body(channel="fax"), "channel"),
        (body(kind="delivery_status"), "outbound"),
        (body(occurred_at="2026-01-04T08:00:00"), "occurred_at"),
        (body(attributes={"n": 3}), "attributes.n"),
    ],
)
def test_a_body_that_is_no_interaction_is_refused_with_the_field_at_fault(
    raw: bytes, reason: str
) -> None:
    with pytest.raises(NormalizationError, match=reason):
        normalize_interaction(raw, "crm", NOW)


def test_a_key_id_that_cannot_name_a_provider_is_refused() -> None:
    with pytest.raises(NormalizationError, match="not usable as a provider name"):
        normalize_interaction(body(), "CRM Prod", NOW)
