"""Web chat frames and the visitor's message as an interaction event (pure, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from omnirouter.channels.webchat.protocol import (
    MAX_FRAME_BYTES,
    MAX_TEXT_CHARS,
    Ack,
    AgentReply,
    ChatMessage,
    ErrorFrame,
    FrameError,
    Identify,
    VisitorProfile,
    connection_problem,
    message_event_id,
    normalize_message,
    parse_agent_reply,
    parse_client_frame,
)
from omnirouter.events import Channel, Direction, IdentifierKind, InteractionEvent
from omnirouter.ingress.publishing import provider_event_id

NOW = datetime(2025, 3, 4, 12, 30, tzinfo=UTC)
VISITOR = "0b7c8f1e-3d4a-4e5f-9a6b-7c8d9e0f1a2b"


def frame(**fields: object) -> str:
    return json.dumps(fields)


# --- connecting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visitor_id", "tenant"),
    [(VISITOR, "default"), ("a", "acme"), ("A_b-9" * 25 + "xyz", "t-1_x")],
)
def test_well_formed_visitor_ids_and_tenants_connect(visitor_id: str, tenant: str) -> None:
    assert connection_problem(visitor_id, tenant) is None


@pytest.mark.parametrize(
    "visitor_id", ["", "x" * 129, "has space", "slash/", "dot.", "é", "<script>", "a:b"]
)
def test_a_malformed_visitor_id_is_refused_with_the_rule(visitor_id: str) -> None:
    assert "visitor_id must be 1-128 characters" in (
        connection_problem(visitor_id, "default") or ""
    )


@pytest.mark.parametrize("tenant", ["", "Default", "-acme", "a" * 64, "ac me", "{x}"])
def test_a_malformed_tenant_is_refused(tenant: str) -> None:
    assert "tenant" in (connection_problem(VISITOR, tenant) or "")


# --- client frames ---------------------------------------------------------------------------


def test_a_message_frame_parses() -> None:
    parsed = parse_client_frame(frame(type="message", client_message_id="m-1", text="Hello"))
    assert parsed == ChatMessage(type="message", client_message_id="m-1", text="Hello")


def test_bytes_frames_parse_like_text_frames() -> None:
    raw = frame(type="message", client_message_id="m-1", text="naïve ☕").encode()
    assert isinstance(parse_client_frame(raw), ChatMessage)


def test_unknown_fields_are_ignored_so_newer_widgets_keep_working() -> None:
    parsed = parse_client_frame(
        frame(type="message", client_message_id="m-1", text="Hi", page="/checkout")
    )
    assert isinstance(parsed, ChatMessage)


def test_text_up_to_the_limit_is_accepted_and_one_more_character_is_refused() -> None:
    at_limit = parse_client_frame(
        frame(type="message", client_message_id="m-1", text="é" * MAX_TEXT_CHARS)
    )
    assert isinstance(at_limit, ChatMessage)
    with pytest.raises(FrameError) as refused:
        parse_client_frame(
            frame(type="message", client_message_id="m-2", text="x" * (MAX_TEXT_CHARS + 1))
        )
    assert refused.value.reason == f"message longer than {MAX_TEXT_CHARS} characters"
    assert refused.value.client_message_id == "m-2"
    assert not refused.value.malformed  # the visitor's to shorten, not a dead letter


def test_a_message_at_the_limit_fits_in_a_frame_even_fully_escaped() -> None:
    escaped = json.dumps(
        {"type": "message", "client_message_id": "m", "text": "\U0001f600" * MAX_TEXT_CHARS},
        ensure_ascii=True,
    )
    assert len(escaped) <= MAX_FRAME_BYTES
    assert isinstance(parse_client_frame(escaped), ChatMessage)


def test_an_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(FrameError, match="frame larger than"):
        parse_client_frame("x" * (MAX_FRAME_BYTES + 1))


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_message_is_refused(text: str) -> None:
    with pytest.raises(FrameError, match="empty message") as refused:
        parse_client_frame(frame(type="message", client_message_id="m-1", text=text))
    assert refused.value.client_message_id == "m-1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "frame is not valid JSON"),
        ("", "frame is not valid JSON"),
        ("[1, 2]", 'frame must be a JSON object with "type" "message" or "identify"'),
        ('"hello"', 'frame must be a JSON object with "type" "message" or "identify"'),
        ("{}", 'frame must be a JSON object with "type" "message" or "identify"'),
        ('{"type": "typing"}', 'frame must be a JSON object with "type" "message" or "identify"'),
        ('{"type": "message", "client_message_id": "m-1"}', "text: Field required"),
        ('{"type": "message", "text": "hi"}', "client_message_id: Field required"),
        (b"\xff\xfe", "frame is not valid JSON"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason_and_marked_for_dead_letter(
    raw: str | bytes, reason: str
) -> None:
    with pytest.raises(FrameError) as refused:
        parse_client_frame(raw)
    assert refused.value.reason == reason
    assert refused.value.malformed


def test_a_malformed_message_keeps_its_client_message_id_for_the_error_frame() -> None:
    with pytest.raises(FrameError) as refused:
        parse_client_frame(frame(type="message", client_message_id="m-7", text=42))
    assert refused.value.client_message_id == "m-7"
    assert refused.value.reason.startswith("text:")


def test_an_unusable_client_message_id_is_not_echoed() -> None:
    with pytest.raises(FrameError) as refused:
        parse_client_frame(frame(type="message", client_message_id="<b>x</b>", text="hi"))
    assert refused.value.client_message_id is None


# --- identify --------------------------------------------------------------------------------


def test_identify_trims_and_keeps_what_was_given() -> None:
    parsed = parse_client_frame(frame(type="identify", email=" ana@example.com ", phone=""))
    assert isinstance(parsed, Identify)
    assert VisitorProfile().updated(parsed) == VisitorProfile(email="ana@example.com")


def test_a_later_identify_replaces_only_the_fields_it_gives() -> None:
    first = VisitorProfile(email="ana@example.com", phone="+15550102345")
    assert first.updated(Identify(type="identify", phone="+44 20 7946 0958")) == VisitorProfile(
        email="ana@example.com", phone="+44 20 7946 0958"
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "leave an e-mail address or a phone number"),
        ({"email": " ", "phone": None}, "leave an e-mail address or a phone number"),
        ({"email": "not-an-address"}, "that e-mail address does not look right"),
        ({"email": "a@b"}, "that e-mail address does not look right"),
        ({"email": "x" * 320 + "@example.com"}, "that e-mail address does not look right"),
        ({"phone": "call me"}, "that phone number does not look right"),
        ({"phone": "1" * 40}, "that phone number does not look right"),
    ],
)
def test_identify_refuses_what_is_plainly_not_an_address(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(FrameError) as refused:
        parse_client_frame(frame(type="identify", **fields))
    assert refused.value.reason == reason
    assert not refused.value.malformed


def test_a_profile_round_trips_through_redis_hash_fields() -> None:
    profile = VisitorProfile(email="ana@example.com", phone="+15550102345")
    stored = {k.encode(): v.encode() for k, v in profile.to_redis().items()}
    assert VisitorProfile.from_redis(stored) == profile
    assert VisitorProfile.from_redis({}) == VisitorProfile()
    assert VisitorProfile(phone="+1555").to_redis() == {"phone": "+1555"}


# --- the interaction event -------------------------------------------------------------------


def message(client_message_id: str = "m-1", text: str = "Where is my order?") -> ChatMessage:
    return ChatMessage(type="message", client_message_id=client_message_id, text=text)


def test_a_message_becomes_an_inbound_webchat_event_keyed_by_the_visitor() -> None:
    event = normalize_message(
        message(), visitor_id=VISITOR, profile=VisitorProfile(), received_at=NOW, tenant="acme"
    )

    assert event.channel is Channel.WEBCHAT
    assert event.direction is Direction.INBOUND
    assert event.tenant == "acme"
    assert event.occurred_at == event.received_at == NOW
    assert [i.address for i in event.identifiers] == [f"chat_visitor:{VISITOR}"]
    assert event.routing_key == f"chat_visitor:{VISITOR}"
    assert event.content.text == "Where is my order?"
    assert event.provider.provider == "webchat"
    assert event.provider.message_id == "m-1"
    assert event.provider.conversation_id == VISITOR
    # What the wire carries is a valid contract event.
    assert InteractionEvent.model_validate_json(event.model_dump_json()) == event


def test_identifiers_the_visitor_left_follow_the_visitor_id() -> None:
    profile = VisitorProfile(email="ana@example.com", phone="+15550102345")
    event = normalize_message(message(), visitor_id=VISITOR, profile=profile, received_at=NOW)
    assert [(i.kind, i.value) for i in event.identifiers] == [
        (IdentifierKind.CHAT_VISITOR, VISITOR),
        (IdentifierKind.EMAIL, "ana@example.com"),
        (IdentifierKind.PHONE, "+15550102345"),
    ]


def test_a_resent_message_keeps_its_event_id_and_other_messages_do_not_share_it() -> None:
    first = normalize_message(
        message(), visitor_id=VISITOR, profile=VisitorProfile(), received_at=NOW
    )
    resent = normalize_message(
        message(),
        visitor_id=VISITOR,
        profile=VisitorProfile(email="ana@example.com"),
        received_at=datetime(2025, 3, 4, 12, 31, tzinfo=UTC),
    )
    other = normalize_message(
        message("m-2"), visitor_id=VISITOR, profile=VisitorProfile(), received_at=NOW
    )
    other_visitor = normalize_message(
        message(), visitor_id="someone-else", profile=VisitorProfile(), received_at=NOW
    )

    assert first.event_id == resent.event_id == message_event_id(VISITOR, "m-1")
    assert first.event_id == provider_event_id("webchat", f"{VISITOR}:m-1")
    assert len({first.event_id, other.event_id, other_visitor.event_id}) == 3


# --- gateway -> widget -----------------------------------------------------------------------


def test_the_dispatchers_reply_parses_and_keeps_its_fields() -> None:
    raw = json.dumps(
        {
            "type": "message",
            "event_id": "5f0c2a9e-1b7d-4c1e-9f3a-2d6b8e4c7a10",
            "text": "It ships today.",
            "agent_id": "agent-7",
            "at": "2025-03-04T12:31:00+00:00",
        }
    ).encode()
    reply = parse_agent_reply(raw)
    assert reply == AgentReply(
        event_id="5f0c2a9e-1b7d-4c1e-9f3a-2d6b8e4c7a10",
        text="It ships today.",
        agent_id="agent-7",
        at=datetime(2025, 3, 4, 12, 31, tzinfo=UTC),
    )
    assert json.loads(reply.model_dump_json())["type"] == "message"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"type": "message", "text": "x", "at": "2025-03-04T12:31:00Z"}',
        '{"type": "message", "event_id": "e", "text": "x", "at": "2025-03-04T12:31:00"}',
        '{"type": "typing", "event_id": "e", "text": "x", "at": "2025-03-04T12:31:00Z"}',
    ],
)
def test_anything_else_on_the_reply_channel_is_not_a_reply(raw: str) -> None:
    with pytest.raises(ValidationError):
        parse_agent_reply(raw)


def test_server_frames_serialize_as_the_widget_expects() -> None:
    event_id = message_event_id(VISITOR, "m-1")
    assert json.loads(Ack(client_message_id="m-1", event_id=event_id).model_dump_json()) == {
        "type": "ack",
        "client_message_id": "m-1",
        "event_id": str(event_id),
    }
    assert json.loads(ErrorFrame(client_message_id=None, reason="nope").model_dump_json()) == {
        "type": "error",
        "client_message_id": None,
        "reason": "nope",
        "retryable": False,
    }
