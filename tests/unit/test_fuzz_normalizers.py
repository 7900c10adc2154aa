"""Fuzzing every channel's normalizer: arbitrary input makes a valid event or the channel's
documented rejection, never any other exception (which would be a 500 or a stuck worker).

E-mail MIME bytes and e-mail form bodies have property tests of their own
(test_channel_email_mime, test_channel_email_webhooks); only what they leave out is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from omnirouter.channels.email.webhooks import Form, normalize_mailgun, normalize_sendgrid
from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.meta_whatsapp.normalize import normalize_notification, parse_notification
from omnirouter.channels.signed_json.normalize import normalize_interaction
from omnirouter.channels.twilio import messaging, voice
from omnirouter.channels.webchat.protocol import (
    ChatMessage,
    FrameError,
    Identify,
    VisitorProfile,
    connection_problem,
    normalize_message,
    parse_client_frame,
)
from omnirouter.channels.webform.normalize import (
    UnsupportedContentType,
    normalize_submission,
    parse_submission,
)
from omnirouter.events import Identifier, IdentifierKind, InteractionEvent, decode, encode
from omnirouter.pipeline.identity.normalize import InvalidIdentifier, normalize_identifier
from omnirouter.pipeline.identity.policy import IdentityPolicy

T = TypeVar("T")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)
# Deep enough to exhaust the interpreter's recursion limit in a recursive JSON parser.
DEEP = 100_000


def nested(depth: int) -> bytes:
    """A JSON document nested ``depth`` arrays deep (closed, so it is well-formed)."""
    return b"[" * depth + b"]" * depth


def attempt(make: Callable[[], T], *refusals: type[Exception]) -> T | Exception:
    """What ``make`` returned, or the documented refusal it raised; anything else propagates."""
    try:
        return make()
    except refusals as exc:
        return exc


def a_valid_event_or_a_reason(outcome: InteractionEvent | Exception | None) -> None:
    """An event that survives the wire, or a refusal that says why (the 422's reason)."""
    if isinstance(outcome, Exception):
        assert str(outcome).strip()
    else:
        a_valid_event(outcome)


def a_valid_event(event: InteractionEvent | None) -> None:
    """What a normalizer returned survives the wire: it encodes and decodes as the contract."""
    if event is not None:
        assert decode(InteractionEvent, encode(event)) == event


def mutated(valid: dict[str, Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` with some keys dropped, some values replaced and some keys added."""
    keys = sorted(valid)
    return st.builds(
        lambda dropped, replaced, added: {
            **{k: v for k, v in valid.items() if k not in dropped},
            **replaced,
            **added,
        },
        st.sets(st.sampled_from(keys)),
        st.dictionaries(st.sampled_from(keys), values, max_size=len(keys)),
        st.dictionaries(st.text(max_size=12), values, max_size=3),
    )


# --- Twilio (form fields) -----------------------------------------------------------------

SMS = {
    "MessageSid": "SM" + "a" * 32,
    "From": "+15550102345",
    "To": "+15017122661",
    "Body": "Where is my parcel?",
    "NumMedia": "1",
    "MediaUrl0": "https://api.twilio.com/media/ME1",
    "MediaContentType0": "image/jpeg",
    "ProfileName": "Ana",
    "MessagingServiceSid": "MG" + "b" * 32,
}
CALL = {
    "CallSid": "CA" + "c" * 32,
    "CallStatus": "completed",
    "From": "+15550102345",
    "To": "+15017122661",
    "Direction": "inbound",
    "CallDuration": "42",
    "Timestamp": "Mon, 02 Mar 2026 09:30:00 +0000",
    "RecordingUrl": "https://api.twilio.com/recordings/RE1",
}
TRANSCRIPT = {
    "TranscriptionSid": "TR" + "d" * 32,
    "TranscriptionText": "Please call me back",
    "TranscriptionStatus": "completed",
    "CallSid": "CA" + "c" * 32,
    "From": "+15550102345",
}
form_text = st.text(max_size=300)

TWILIO: dict[str, tuple[Callable[[Any, datetime], InteractionEvent | None], dict[str, str]]] = {
    "message": (messaging.normalize_message, SMS),
    "call status": (voice.normalize_call_status, CALL),
    "transcription": (voice.normalize_transcription, TRANSCRIPT),
}


@FUZZ
@given(
    st.sampled_from(sorted(TWILIO)).flatmap(
        lambda k: st.tuples(st.just(k), mutated(TWILIO[k][1], form_text))
    )
)
@example(("message", {**SMS, "From": "+1" * 2000}))
@example(("message", {**SMS, "NumMedia": "99999999999999999999"}))
@example(("call status", {**CALL, "Timestamp": "Mon, 99 Foo 99999 99:99:99"}))
@example(("call status", {**CALL, "From": "x" * 5000}))
@example(("transcription", {**TRANSCRIPT, "TranscriptionText": "x" * 200_000}))
def test_twilio_forms_make_an_event_nothing_or_a_normalization_error(
    kind_and_form: tuple[str, dict[str, str]],
) -> None:
    """Messages, call statuses and transcriptions (None: a status acknowledged, no event)."""
    kind, form = kind_and_form
    normalize = TWILIO[kind][0]
    a_valid_event_or_a_reason(attempt(lambda: normalize(form, NOW), NormalizationError))


# --- Meta WhatsApp (JSON) -----------------------------------------------------------------

WHATSAPP_MESSAGE = {
    "from": "16505551234",
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
    "timestamp": "1739321024",
    "type": "text",
    "text": {"body": "Hi, my order?"},
}


def whatsapp(message: Any) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "16505551234"}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def whatsapp_makes_events_or_refuses(raw: bytes) -> None:
    outcome = attempt(
        lambda: normalize_notification(parse_notification(raw), NOW), NormalizationError
    )
    if isinstance(outcome, Exception):
        a_valid_event_or_a_reason(outcome)
        return
    for event in outcome.events:
        a_valid_event(event)
    # A message that made no event is reported (and the body dead-lettered), never dropped.
    assert all(reason.strip() for reason in outcome.failures)


@FUZZ
@given(st.binary(max_size=2000))
@example(nested(DEEP))
@example(b'{"object": "whatsapp_business_account", "entry": ' + nested(DEEP) + b"}")
def test_whatsapp_bytes_make_events_or_a_normalization_error(raw: bytes) -> None:
    whatsapp_makes_events_or_refuses(raw)


@FUZZ
@given(json_values)
def test_whatsapp_json_documents_make_events_or_a_normalization_error(document: Any) -> None:
    whatsapp_makes_events_or_refuses(json.dumps(document).encode())


@FUZZ
@given(mutated(WHATSAPP_MESSAGE, json_values))
@example({**WHATSAPP_MESSAGE, "timestamp": 10**30})
@example({**WHATSAPP_MESSAGE, "from": "1" * 5000})
def test_mutated_whatsapp_messages_make_events_or_a_normalization_error(
    message: dict[str, Any],
) -> None:
    whatsapp_makes_events_or_refuses(json.dumps(whatsapp(message)).encode())


# --- Signed JSON ----------------------------------------------------------------------------

SIGNED = {
    "message_id": "crm-4711",
    "channel": "api",
    "kind": "message",
    "occurred_at": "2026-01-01T09:30:00Z",
    "identifiers": [{"kind": "email", "value": "ana@example.com"}],
    "display_name": "Ana Lima",
    "text": "Ticket reopened",
    "attributes": {"tier": "gold"},
}
key_ids = st.sampled_from(["crm", "shop.eu", "", "CRM", "a b", "x" * 300]) | st.text(max_size=20)


def signed_makes_an_event_or_refuses(raw: bytes, key_id: str) -> None:
    a_valid_event_or_a_reason(
        attempt(lambda: normalize_interaction(raw, key_id, NOW), NormalizationError)
    )


@FUZZ
@given(st.binary(max_size=2000), key_ids)
@example(b'{"attributes": ' + nested(DEEP) + b"}", "crm")
def test_signed_json_bytes_make_an_event_or_a_normalization_error(raw: bytes, key: str) -> None:
    signed_makes_an_event_or_refuses(raw, key)


@FUZZ
@given(mutated(SIGNED, json_values), key_ids)
@example({**SIGNED, "occurred_at": "9999-12-31T23:59:59+14:00"}, "crm")
def test_mutated_signed_interactions_make_an_event_or_a_normalization_error(
    body: dict[str, Any], key: str
) -> None:
    signed_makes_an_event_or_refuses(json.dumps(body).encode(), key)


# --- Web forms -----------------------------------------------------------------------------

content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "multipart/form-data; boundary=zzz",
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "application/json",
        "application/ld+json",
        "text/plain",
        "",
    ]
)
FORM_FIELDS = ["email", "phone", "name", "message", "subject", "submission_id", "extra"]
form_fields = st.lists(
    st.tuples(st.sampled_from(FORM_FIELDS) | st.text(max_size=10), st.text(max_size=200)),
    max_size=12,
)


def webform_makes_an_event_or_refuses(raw: bytes, content_type: str, form_id: str) -> None:
    a_valid_event_or_a_reason(
        attempt(
            lambda: normalize_submission(form_id, parse_submission(raw, content_type), NOW),
            NormalizationError,
            UnsupportedContentType,
        )
    )


@FUZZ
@given(st.binary(max_size=2000), content_types)
@example(nested(DEEP), "application/json")
@example(b'{"email": ' + nested(DEEP) + b"}", "application/json")
@example(
    b"--zzz\r\nContent-Disposition: form-data; name=email\r\n\r\n" + b"a" * 5000,
    "multipart/form-data; boundary=zzz",
)
def test_form_bodies_make_an_event_or_a_rejection(raw: bytes, content_type: str) -> None:
    webform_makes_an_event_or_refuses(raw, content_type, "contact")


@FUZZ
@given(json_values)
def test_json_form_documents_make_an_event_or_a_rejection(document: Any) -> None:
    webform_makes_an_event_or_refuses(json.dumps(document).encode(), "application/json", "contact")


@FUZZ
@given(form_fields)
@example([("email", "a" * 5000 + "@example.com")])
@example([("phone", "+1" * 5000)])
def test_parsed_form_fields_make_an_event_or_a_normalization_error(
    fields: list[tuple[str, str]],
) -> None:
    a_valid_event_or_a_reason(
        attempt(lambda: normalize_submission("contact", fields, NOW), NormalizationError)
    )


# --- Web chat ------------------------------------------------------------------------------

frame_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "identify", "ack", ""]) | st.text(max_size=8)},
    optional={
        "client_message_id": st.text(max_size=140) | json_values,
        "text": st.text(max_size=300) | json_values,
        "email": st.text(max_size=60) | json_values,
        "phone": st.text(max_size=40) | json_values,
    },
)


def chat_frame_or_refusal(raw: str | bytes) -> None:
    outcome = attempt(lambda: parse_client_frame(raw), FrameError)
    if isinstance(outcome, FrameError):
        assert outcome.reason.strip()  # what the widget shows the visitor
    else:
        assert isinstance(outcome, ChatMessage | Identify)


@FUZZ
@given(st.text(max_size=500) | st.binary(max_size=500))
@example(nested(DEEP).decode())
@example(b"\xff\xfe")
def test_arbitrary_chat_frames_parse_or_are_refused(raw: str | bytes) -> None:
    chat_frame_or_refusal(raw)


@FUZZ
@given(frame_objects)
def test_chat_frame_objects_parse_or_are_refused(frame: dict[str, Any]) -> None:
    chat_frame_or_refusal(json.dumps(frame))


@FUZZ
@given(
    st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z"),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,128}\Z"),
    st.text(min_size=1, max_size=4000).filter(str.strip),
    st.none() | st.emails(),
    st.none() | st.from_regex(r"\A\+?[0-9 ().-]{4,31}\Z"),
)
def test_a_message_the_socket_accepted_makes_an_event_or_a_normalization_error(
    visitor_id: str, client_message_id: str, text: str, email: str | None, phone: str | None
) -> None:
    """Whatever got past the socket's own checks (visitor id, frame, identify) normalizes."""
    assert connection_problem(visitor_id, "default") is None
    message = ChatMessage(type="message", client_message_id=client_message_id, text=text)
    outcome = attempt(
        lambda: normalize_message(
            message,
            visitor_id=visitor_id,
            profile=VisitorProfile(email=email, phone=phone),
            received_at=NOW,
        ),
        NormalizationError,
    )
    a_valid_event_or_a_reason(outcome)


# --- E-mail webhooks: JSON-valued form fields ----------------------------------------------


@FUZZ
@given(
    st.sampled_from(["charsets", "attachment-info", "message-headers", "content-id-map"]),
    st.sampled_from([nested(DEEP), b"{" * 50, b"[" * 3000]) | st.binary(max_size=200),
)
def test_json_form_fields_of_email_webhooks_never_crash(name: str, value: bytes) -> None:
    form = Form(fields={"from": b"Ana <ana@example.com>", "text": b"hi", name: value})
    for normalize in (normalize_sendgrid, normalize_mailgun):
        a_valid_event_or_a_reason(attempt(partial(normalize, form, NOW), NormalizationError))


# --- Identity --------------------------------------------------------------------------------

POLICY = IdentityPolicy()


@FUZZ
@given(
    st.sampled_from(list(IdentifierKind)), st.text(max_size=400), st.none() | st.text(max_size=20)
)
@example(IdentifierKind.PHONE, "+" + "9" * 250, None)
@example(IdentifierKind.EMAIL, "a@" + "b" * 70 + "." + "c" * 70, None)
@example(IdentifierKind.SOCIAL_HANDLE, "@ANA", "twitter")
def test_identifiers_normalize_or_are_invalid(
    kind: IdentifierKind, value: str, provider: str | None
) -> None:
    try:
        identifier = Identifier(kind=kind, value=value, provider=provider)
    except ValidationError:
        assume(False)  # the contract refused it already: no event carries it
        return
    normalized = attempt(lambda: normalize_identifier(identifier, POLICY), InvalidIdentifier)
    if isinstance(normalized, InvalidIdentifier):
        assert str(normalized).strip()  # the reason kept with the rejected identifier
        return
    assert isinstance(normalized, Identifier)
    assert normalized.kind is kind
    # Normalizing is idempotent: the worker may see its own output again (replays, merges).
    assert normalize_identifier(normalized, POLICY) == normalized
