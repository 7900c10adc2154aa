"""Twilio Voice status and transcription callbacks: real payloads and signatures, real Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from omnirouter.channels.twilio.signature import twilio_signature
from omnirouter.events import Channel, InteractionEvent, InteractionKind

pytestmark = pytest.mark.integration

TOKEN = "12345678901234567890123456789012"
BASE = "https://cx.example.com/webhooks/twilio"
STATUS_PATH = "/webhooks/twilio/voice/status"
TRANSCRIPTION_PATH = "/webhooks/twilio/voice/transcription"
CALL_SID = "CA5f3b1c2e0e8f4d6a9b7c1d2e3f4a5b6c"

# The fields Twilio posts to a Voice statusCallback when an inbound call ends, as documented.
COMPLETED = {
    "Called": "+15017122661",
    "ToState": "CA",
    "CallerCountry": "US",
    "Direction": "inbound",
    "Timestamp": "Tue, 10 Jan 2023 18:30:02 +0000",
    "CallbackSource": "call-progress-events",
    "CallerState": "CA",
    "ToZip": "",
    "SequenceNumber": "3",
    "CallSid": CALL_SID,
    "To": "+15017122661",
    "CallerZip": "",
    "ToCountry": "US",
    "CalledZip": "",
    "ApiVersion": "2010-04-01",
    "CalledCity": "",
    "CallStatus": "completed",
    "Duration": "1",
    "From": "+15550102345",
    "CallDuration": "42",
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "CalledCountry": "US",
    "CallerCity": "",
    "ToCity": "",
    "FromCountry": "US",
    "Caller": "+15550102345",
    "FromCity": "",
    "CalledState": "CA",
    "FromZip": "",
    "FromState": "CA",
}
RINGING = {
    **{k: v for k, v in COMPLETED.items() if k not in {"CallDuration", "Duration"}},
    "CallStatus": "ringing",
    "SequenceNumber": "0",
    "Timestamp": "Tue, 10 Jan 2023 18:29:20 +0000",
}
# The fields of a <Record transcribeCallback> request.
TRANSCRIPTION = {
    "TranscriptionSid": "TR8c61027b709ffb038236612dc5af8723",
    "TranscriptionText": "Hi, I am calling about order 4711, the parcel never arrived.",
    "TranscriptionStatus": "completed",
    "TranscriptionUrl": (
        "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
        "/Transcriptions/TR8c61027b709ffb038236612dc5af8723"
    ),
    "RecordingSid": "RE557ce644e5ab84fa21cc21112e22c485",
    "RecordingUrl": (
        "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
        "/Recordings/RE557ce644e5ab84fa21cc21112e22c485"
    ),
    "CallSid": CALL_SID,
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "From": "+15550102345",
    "To": "+15017122661",
    "CallStatus": "completed",
    "ApiVersion": "2010-04-01",
    "Direction": "inbound",
    "ForwardedFrom": "",
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def signed(path: str, fields: dict[str, str]) -> dict[str, str]:
    url = f"https://cx.example.com{path}"
    return {**FORM, "X-Twilio-Signature": twilio_signature(TOKEN, url, fields.items())}


async def post(gateway, path: str, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    return await gateway.client.post(path, content=urlencode(fields), headers=signed(path, fields))


async def published_through_sentinel(gateway) -> list[InteractionEvent]:  # type: ignore[no-untyped-def]
    """Publish a sentinel call outcome; return everything on the topic up to and including it.

    The topic has one partition, so anything published before the sentinel is read first.
    """
    sentinel = {**COMPLETED, "CallSid": "CAsentinel", "CallStatus": "busy"}
    answer = await post(gateway, STATUS_PATH, sentinel)
    assert answer.status_code == 200
    topic = gateway.topic("interactions.inbound")

    def through_sentinel(reader) -> list[InteractionEvent] | None:  # type: ignore[no-untyped-def]
        events: list[InteractionEvent] = reader.decoded(topic, InteractionEvent)
        return events if any(e.provider.thread_id == "CAsentinel" for e in events) else None

    events: list[InteractionEvent] = await gateway.reader.wait_for(
        through_sentinel, what="the sentinel call"
    )
    return events


@pytest.mark.parametrize(
    ("path", "fields"), [(STATUS_PATH, COMPLETED), (TRANSCRIPTION_PATH, TRANSCRIPTION)]
)
def test_our_signature_is_the_one_twilios_own_validator_accepts(
    path: str, fields: dict[str, str]
) -> None:
    url = f"https://cx.example.com{path}"
    signature = twilio_signature(TOKEN, url, fields.items())
    assert RequestValidator(TOKEN).validate(url, fields, signature)


async def test_a_finished_call_is_published_with_its_outcome(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await post(gateway, STATUS_PATH, COMPLETED)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    assert "<Response></Response>" in answer.text
    [event] = await gateway.inbound(1)
    assert event.channel is Channel.VOICE
    assert event.kind is InteractionKind.CALL
    assert [i.address for i in event.identifiers] == ["phone:+15550102345"]
    assert event.content.text == "Call completed (42 s)"
    assert event.occurred_at == datetime(2023, 1, 10, 18, 30, 2, tzinfo=UTC)
    assert event.provider.message_id == f"{CALL_SID}:completed"
    assert event.provider.raw_status == "completed"
    assert event.provider.thread_id == CALL_SID


async def test_progress_statuses_and_calls_we_placed_are_acknowledged_not_published(
    gateway,
) -> None:  # type: ignore[no-untyped-def]
    in_progress = {**RINGING, "CallStatus": "in-progress", "SequenceNumber": "1"}
    outbound = {**COMPLETED, "CallSid": "CAoutbound", "Direction": "outbound-api"}
    for fields in (RINGING, in_progress, outbound):
        answer = await post(gateway, STATUS_PATH, fields)
        assert answer.status_code == 200, answer.text
        assert "<Response></Response>" in answer.text

    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == ["CAsentinel:busy"]
    assert events[0].content.text == "Call busy (42 s)"


async def test_a_retried_status_callback_is_published_once(gateway) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        answer = await post(gateway, STATUS_PATH, COMPLETED)
        assert answer.status_code == 200

    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == [f"{CALL_SID}:completed", "CAsentinel:busy"]


async def test_a_transcription_is_published_as_the_calls_transcript(gateway) -> None:  # type: ignore[no-untyped-def]
    answer = await post(gateway, TRANSCRIPTION_PATH, TRANSCRIPTION)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    [event] = await gateway.inbound(1)
    assert event.channel is Channel.VOICE
    assert event.kind is InteractionKind.TRANSCRIPT
    assert event.content.text == TRANSCRIPTION["TranscriptionText"]
    assert event.provider.message_id == TRANSCRIPTION["TranscriptionSid"]
    assert event.provider.thread_id == CALL_SID
    assert [a.url for a in event.content.attachments] == [TRANSCRIPTION["RecordingUrl"]]


async def test_a_failed_transcription_is_acknowledged_not_published(gateway) -> None:  # type: ignore[no-untyped-def]
    failed = {**TRANSCRIPTION, "TranscriptionStatus": "failed", "TranscriptionText": ""}
    answer = await post(gateway, TRANSCRIPTION_PATH, failed)

    assert answer.status_code == 200, answer.text
    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == ["CAsentinel:busy"]


@pytest.mark.parametrize("path", [STATUS_PATH, TRANSCRIPTION_PATH])
async def test_missing_or_wrong_signatures_are_refused(gateway, path: str) -> None:  # type: ignore[no-untyped-def]
    fields = COMPLETED if path == STATUS_PATH else TRANSCRIPTION
    missing = await gateway.client.post(path, content=urlencode(fields), headers=FORM)
    tampered = {**fields, "From": "+15550109999"}
    wrong = await gateway.client.post(
        path, content=urlencode(tampered), headers=signed(path, fields)
    )

    assert missing.status_code == 401
    assert wrong.status_code == 403
    events = await published_through_sentinel(gateway)
    assert [e.provider.message_id for e in events] == ["CAsentinel:busy"]


async def test_a_finished_call_without_caller_is_422_and_dead_lettered(gateway) -> None:  # type: ignore[no-untyped-def]
    fields = {k: v for k, v in COMPLETED.items() if k not in {"From", "Caller"}}
    answer = await post(gateway, STATUS_PATH, fields)

    assert answer.status_code == 422
    assert answer.json()["detail"] == "Twilio call status without From"
    [letter] = await gateway.dead_letters(1)
    assert letter.stage == "ingress"
    assert letter.original_value() == urlencode(fields).encode()
