"""Twilio Voice callbacks: which statuses make events, and what the events say (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omnirouter.channels.errors import NormalizationError
from omnirouter.channels.twilio.voice import (
    call_message_id,
    normalize_call_status,
    normalize_transcription,
    transcription_message_id,
)
from omnirouter.events import Channel, Direction, InteractionKind
from omnirouter.ingress.publishing import provider_event_id

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CALL = {
    "CallSid": "CA5f3b1c2e0e8f4d6a9b7c1d2e3f4a5b6c",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "+15550102345",
    "To": "+15017122661",
    "Direction": "inbound",
    "CallStatus": "completed",
    "CallDuration": "42",
    "Timestamp": "Tue, 10 Jan 2023 18:30:02 +0000",
    "ApiVersion": "2010-04-01",
}
TRANSCRIPTION = {
    "TranscriptionSid": "TR8c61027b709ffb038236612dc5af8723",
    "TranscriptionText": "Calling about order 4711.",
    "TranscriptionStatus": "completed",
    "RecordingSid": "RE557ce644e5ab84fa21cc21112e22c485",
    "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE55",
    "CallSid": CALL["CallSid"],
    "From": "+15550102345",
    "To": "+15017122661",
    "Direction": "inbound",
}


@pytest.mark.parametrize(
    ("call_status", "text"),
    [
        ("completed", "Call completed (42 s)"),
        ("busy", "Call busy (42 s)"),
        ("no-answer", "Call not answered (42 s)"),
        ("failed", "Call failed (42 s)"),
        ("canceled", "Call canceled (42 s)"),
    ],
)
def test_each_terminal_status_is_a_call_event_of_its_own(call_status: str, text: str) -> None:
    event = normalize_call_status({**CALL, "CallStatus": call_status}, NOW)

    assert event is not None
    assert (event.channel, event.kind, event.direction) == (
        Channel.VOICE,
        InteractionKind.CALL,
        Direction.INBOUND,
    )
    assert event.content.text == text
    message_id = f"{CALL['CallSid']}:{call_status}"
    assert (
        event.provider.message_id
        == message_id
        == call_message_id({**CALL, "CallStatus": call_status})
    )
    assert event.event_id == provider_event_id("twilio", message_id)
    assert event.provider.raw_status == call_status
    assert event.provider.thread_id == CALL["CallSid"]
    assert [i.address for i in event.identifiers] == ["phone:+15550102345"]
    assert event.occurred_at == datetime(2023, 1, 10, 18, 30, 2, tzinfo=UTC)


@pytest.mark.parametrize("call_status", ["queued", "initiated", "ringing", "in-progress"])
def test_a_call_still_going_makes_no_event(call_status: str) -> None:
    assert normalize_call_status({**CALL, "CallStatus": call_status}, NOW) is None


def test_progress_without_a_caller_is_still_just_acknowledged() -> None:
    ringing = {k: v for k, v in CALL.items() if k != "From"} | {"CallStatus": "ringing"}
    assert normalize_call_status(ringing, NOW) is None


@pytest.mark.parametrize("direction", ["outbound-api", "outbound-dial"])
def test_calls_we_placed_make_no_inbound_event(direction: str) -> None:
    assert normalize_call_status({**CALL, "Direction": direction}, NOW) is None
    assert normalize_transcription({**TRANSCRIPTION, "Direction": direction}, NOW) is None


def test_optional_fields_fall_back_sensibly() -> None:
    bare = {k: v for k, v in CALL.items() if k not in {"CallDuration", "Timestamp", "From"}}
    event = normalize_call_status({**bare, "Caller": "+15550102345", "CallerName": "ANA L"}, NOW)

    assert event is not None
    assert event.content.text == "Call completed"
    assert event.occurred_at == NOW
    assert event.display_name == "ANA L"
    assert event.identifiers[0].value == "+15550102345"


def test_a_timestamp_without_zone_is_utc() -> None:
    event = normalize_call_status({**CALL, "Timestamp": "Tue, 10 Jan 2023 18:30:02 -0000"}, NOW)
    assert event is not None
    assert event.occurred_at == datetime(2023, 1, 10, 18, 30, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({k: v for k, v in CALL.items() if k != "CallSid"}, "without CallSid"),
        ({k: v for k, v in CALL.items() if k != "CallStatus"}, "without CallStatus"),
        ({k: v for k, v in CALL.items() if k != "From"}, "without From"),
        ({**CALL, "Timestamp": "yesterday"}, "RFC 2822"),
    ],
)
def test_unusable_call_statuses_are_refused_with_the_reason(
    fields: dict[str, str], reason: str
) -> None:
    with pytest.raises(NormalizationError, match=reason):
        normalize_call_status(fields, NOW)


def test_a_completed_transcription_is_the_calls_transcript() -> None:
    event = normalize_transcription(TRANSCRIPTION, NOW)

    assert event is not None
    assert (event.channel, event.kind) == (Channel.VOICE, InteractionKind.TRANSCRIPT)
    assert event.content.text == "Calling about order 4711."
    assert event.event_id == provider_event_id("twilio", TRANSCRIPTION["TranscriptionSid"])
    assert event.provider.message_id == transcription_message_id(TRANSCRIPTION)
    assert event.provider.thread_id == CALL["CallSid"]
    assert event.occurred_at == NOW
    [recording] = event.content.attachments
    assert (recording.filename, recording.url) == (
        "RE557ce644e5ab84fa21cc21112e22c485.wav",
        TRANSCRIPTION["RecordingUrl"],
    )


def test_a_failed_transcription_makes_no_event() -> None:
    failed = {**TRANSCRIPTION, "TranscriptionStatus": "failed", "TranscriptionText": ""}
    assert normalize_transcription(failed, NOW) is None


def test_a_transcription_without_sid_or_caller_is_refused() -> None:
    with pytest.raises(NormalizationError, match="TranscriptionSid"):
        normalize_transcription(
            {k: v for k, v in TRANSCRIPTION.items() if k != "TranscriptionSid"}, NOW
        )
    with pytest.raises(NormalizationError, match="without From"):
        normalize_transcription({k: v for k, v in TRANSCRIPTION.items() if k != "From"}, NOW)
