"""WhatsApp Cloud API: signature, handshake and notification normalization (pure)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.meta_whatsapp.normalize import (
    normalize_message,
    normalize_notification,
    parse_notification,
)
from omnirouter.channels.meta_whatsapp.signature import (
    meta_signature,
    signature_matches,
    subscription_challenge,
)
from omnirouter.events import Channel, Direction, IdentifierKind
from omnirouter.ingress.publishing import provider_event_id

SECRET = "meta-app-secret"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="


def message(type_: str, body: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"from": "16505551234", "id": WAMID, "timestamp": "1739321024"}
    value["type"] = type_
    if body is not None:
        value[type_] = body
    return {**value, **extra}


def notification(*changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": list(changes)}],
    }


def change(**value: Any) -> dict[str, Any]:
    return {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}


# --- signature and handshake --------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_the_raw_body_with_the_app_secret() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert meta_signature(SECRET, body) == f"sha256={expected}"
    assert signature_matches(SECRET, body, f"sha256={expected}")
    assert signature_matches(SECRET, body, f"sha256={expected.upper()}")


@pytest.mark.parametrize(
    "header",
    ["", "sha256=", "sha1=abc", "sha256=" + "0" * 64, meta_signature("other", b"{}")],
)
def test_any_other_signature_does_not_match(header: str) -> None:
    assert not signature_matches(SECRET, b"{}", header)


def test_the_handshake_echoes_the_challenge_only_for_our_token() -> None:
    ok = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert subscription_challenge(ok, "tok") == "1158201444"
    assert subscription_challenge({**ok, "hub.verify_token": "tok2"}, "tok") is None
    assert subscription_challenge({**ok, "hub.mode": "unsubscribe"}, "tok") is None
    assert subscription_challenge({"hub.challenge": "1"}, "tok") is None


# --- notifications ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_no_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(NormalizationError):
        parse_notification(raw)


def test_other_objects_hold_nothing_for_us() -> None:
    parsed = normalize_notification({"object": "instagram", "entry": "anything"}, NOW)
    assert (parsed.events, parsed.statuses, parsed.failures) == ((), 0, ())


def test_a_whatsapp_notification_without_entry_list_is_refused() -> None:
    with pytest.raises(NormalizationError, match="entry"):
        normalize_notification({"object": "whatsapp_business_account", "entry": {}}, NOW)


def test_messages_across_entries_and_changes_each_make_an_event_named_by_sender() -> None:
    payload = notification(
        change(
            contacts=[
                {"profile": {"name": "Ana"}, "wa_id": "16505551234"},
                {"profile": {"name": "Ben"}, "wa_id": "447700900123"},
            ],
            messages=[
                message("text", {"body": "one"}),
                message("text", {"body": "two"}, **{"from": "447700900123", "id": "wamid.2"}),
            ],
        ),
        {"field": "account_update", "value": {"messages": [message("text", {"body": "no"})]}},
        change(statuses=[{"id": "wamid.ours", "status": "read", "recipient_id": "16505551234"}]),
    )
    parsed = normalize_notification(payload, NOW)

    assert [e.content.text for e in parsed.events] == ["one", "two"]
    assert [e.display_name for e in parsed.events] == ["Ana", "Ben"]
    assert parsed.statuses == 1
    assert parsed.failures == ()


def test_a_bad_message_is_reported_without_losing_its_siblings() -> None:
    broken = message("text", {"body": "x"}, id="wamid.broken")
    del broken["from"]
    parsed = normalize_notification(
        notification(change(messages=[message("text", {"body": "ok"}), broken])), NOW
    )
    assert [e.content.text for e in parsed.events] == ["ok"]
    assert parsed.failures == ("wamid.broken: WhatsApp message without from",)


# --- one message --------------------------------------------------------------------------


def test_a_text_message_is_an_inbound_whatsapp_message_from_an_international_number() -> None:
    event = normalize_message(message("text", {"body": "Hello"}), NOW)

    assert event.event_id == provider_event_id("meta", WAMID)
    assert (event.channel, event.direction) == (Channel.WHATSAPP, Direction.INBOUND)
    [sender] = event.identifiers
    assert (sender.kind, sender.value, sender.provider) == (
        IdentifierKind.PHONE,
        "+16505551234",
        "whatsapp",
    )
    assert event.occurred_at == datetime(2025, 2, 12, 0, 43, 44, tzinfo=UTC)
    assert event.received_at == NOW
    assert event.content.text == "Hello"
    assert (event.provider.provider, event.provider.message_id) == ("meta", WAMID)


def test_a_message_without_timestamp_occurred_when_received() -> None:
    raw = message("text", {"body": "x"})
    del raw["timestamp"]
    assert normalize_message(raw, NOW).occurred_at == NOW


def test_an_unreadable_timestamp_or_missing_id_is_refused() -> None:
    with pytest.raises(NormalizationError, match="unix seconds"):
        normalize_message(message("text", {"body": "x"}, timestamp="yesterday"), NOW)
    no_id = message("text", {"body": "x"})
    del no_id["id"]
    with pytest.raises(NormalizationError, match="without id"):
        normalize_message(no_id, NOW)


@pytest.mark.parametrize(
    ("type_", "media", "text", "filename", "content_type"),
    [
        (
            "image",
            {"caption": "box", "mime_type": "image/jpeg", "sha256": "h", "id": "111"},
            "box",
            "image-111",
            "image/jpeg",
        ),
        (
            "document",
            {"filename": "a.pdf", "mime_type": "application/pdf", "sha256": "h", "id": "222"},
            "a.pdf",
            "a.pdf",
            "application/pdf",
        ),
        (
            "document",
            {"caption": "invoice", "filename": "a.pdf", "mime_type": "application/pdf", "id": "3"},
            "invoice",
            "a.pdf",
            "application/pdf",
        ),
        (
            "audio",
            {"mime_type": "audio/ogg; codecs=opus", "sha256": "h", "id": "444", "voice": True},
            "",
            "audio-444",
            "audio/ogg; codecs=opus",
        ),
        ("video", {"mime_type": "video/mp4", "id": "555"}, "", "video-555", "video/mp4"),
        ("sticker", {"mime_type": "image/webp", "id": "666"}, "", "sticker-666", "image/webp"),
    ],
)
def test_media_becomes_attachment_metadata_pointing_at_the_graph_api(
    type_: str, media: dict[str, Any], text: str, filename: str, content_type: str
) -> None:
    event = normalize_message(message(type_, media), NOW, media_base="https://graph.test/v20.0/")

    assert event.content.text == text
    [attachment] = event.content.attachments
    assert (attachment.filename, attachment.content_type) == (filename, content_type)
    assert attachment.url == f"https://graph.test/v20.0/{media['id']}"
    assert attachment.size_bytes == 0


@pytest.mark.parametrize(
    ("type_", "body", "text"),
    [
        (
            "location",
            {"latitude": 37.48, "longitude": -122.14, "name": "HQ", "url": "https://x.test"},
            "Location: HQ (37.48, -122.14)\nhttps://x.test",
        ),
        ("location", {"latitude": 1.5, "longitude": 2.5}, "Location: (1.5, 2.5)"),
        (
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes, cancel"}},
            "Yes, cancel",
        ),
        (
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "px", "title": "Priority Express", "description": "1 day"},
            },
            "Priority Express",
        ),
        ("button", {"payload": "STOP-PROMOS", "text": "Stop promotions"}, "Stop promotions"),
        (
            "system",
            {"body": "User changed number", "type": "user_changed_number"},
            "User changed number",
        ),
        ("unsupported", None, "[WhatsApp unsupported message]"),
        ("poll_vote", {"anything": 1}, "[WhatsApp poll_vote message]"),
    ],
)
def test_non_text_messages_become_readable_text(
    type_: str, body: dict[str, Any] | None, text: str
) -> None:
    assert normalize_message(message(type_, body), NOW).content.text == text


def test_replies_and_reactions_point_at_the_message_they_answer() -> None:
    reply = message("text", {"body": "yes"}, context={"from": "15550783881", "id": "wamid.ours"})
    reaction = message("reaction", {"message_id": "wamid.ours2", "emoji": "\U0001f44d"})

    assert normalize_message(reply, NOW).provider.in_reply_to == "wamid.ours"
    reacted = normalize_message(reaction, NOW)
    assert reacted.provider.in_reply_to == "wamid.ours2"
    assert reacted.content.text == "Reacted \U0001f44d"


def test_shared_contacts_are_summarised() -> None:
    cards = [{"name": {"formatted_name": "Carla Diaz"}, "phones": [{"phone": "+1 555 010 9999"}]}]
    event = normalize_message(message("contacts", None, contacts=cards), NOW)
    assert event.content.text == "Shared contact: Carla Diaz +1 555 010 9999"
