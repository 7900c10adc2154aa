"""Twilio Voice status and transcription callbacks as interaction events (pure).

A call reports each status change on its own; only the final one (how the call ended) becomes
an event. Calls we placed (``Direction`` outbound-api / outbound-dial, including the agent leg
of a forwarded inbound call) are acknowledged without an event: their ``From`` is our own
number, and an outbound interaction needs the customer_id the gateway does not know.

Payload references:
https://www.twilio.com/docs/voice/api/call-resource#statuscallback
https://www.twilio.com/docs/voice/twiml/record#transcribecallback
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
    Attachment,
    Channel,
    Content,
    Direction,
    Identifier,
    IdentifierKind,
    InteractionEvent,
    InteractionKind,
    ProviderRefs,
)
from omnirouter.ingress.publishing import provider_event_id

PROVIDER = "twilio"
CALL_OUTCOMES = {
    "completed": "Call completed",
    "busy": "Call busy",
    "no-answer": "Call not answered",
    "failed": "Call failed",
    "canceled": "Call canceled",
}
"""Terminal call statuses and how the timeline words them."""


def call_message_id(form: Mapping[str, str]) -> str | None:
    """The id of one status of one call: ``<CallSid>:<CallStatus>``."""
    sid, call_status = form.get("CallSid"), form.get("CallStatus")
    return f"{sid}:{call_status}" if sid and call_status else None


def transcription_message_id(form: Mapping[str, str]) -> str | None:
    """Twilio's id of the transcription (what its retries share)."""
    return form.get("TranscriptionSid") or None


def normalize_call_status(
    form: Mapping[str, str], received_at: datetime, *, tenant: str = "default"
) -> InteractionEvent | None:
    """The call's outcome, or None for a status to acknowledge without an event.

    None for a call still in progress (queued, initiated, ringing, in-progress) and for calls
    we placed.

    Raises:
        NormalizationError: no CallSid, CallStatus or caller, or an unreadable Timestamp.
    """
    sid = form.get("CallSid")
    call_status = form.get("CallStatus") or ""
    if not sid:
        raise NormalizationError("Twilio call status without CallSid")
    if not call_status:
        raise NormalizationError("Twilio call status without CallStatus")
    if call_status not in CALL_OUTCOMES or _placed_by_us(form):
        return None
    caller = _caller(form, "call status")
    text = CALL_OUTCOMES[call_status]
    duration = form.get("CallDuration") or ""
    if duration.isdigit():
        text = f"{text} ({int(duration)} s)"
    return InteractionEvent(
        event_id=provider_event_id(PROVIDER, f"{sid}:{call_status}"),
        tenant=tenant,
        occurred_at=_timestamp(form.get("Timestamp"), received_at),
        received_at=received_at,
        channel=Channel.VOICE,
        direction=Direction.INBOUND,
        kind=InteractionKind.CALL,
        identifiers=(Identifier(kind=IdentifierKind.PHONE, value=caller),),
        display_name=form.get("CallerName") or None,
        content=Content(text=text, attachments=_recording(form)),
        provider=ProviderRefs(
            provider=PROVIDER,
            message_id=f"{sid}:{call_status}",
            thread_id=sid,
            raw_status=call_status,
        ),
    )


def normalize_transcription(
    form: Mapping[str, str], received_at: datetime, *, tenant: str = "default"
) -> InteractionEvent | None:
    """The transcript of a call recording, or None when transcribing failed or we placed the call.

    Raises:
        NormalizationError: no TranscriptionSid or caller.
    """
    sid = transcription_message_id(form)
    if not sid:
        raise NormalizationError("Twilio transcription without TranscriptionSid")
    if (form.get("TranscriptionStatus") or "").lower() == "failed" or _placed_by_us(form):
        return None
    caller = _caller(form, "transcription")
    call_sid = form.get("CallSid") or None
    return InteractionEvent(
        event_id=provider_event_id(PROVIDER, sid),
        tenant=tenant,
        # The callback carries no time of its own; the transcript exists from now on.
        occurred_at=received_at,
        received_at=received_at,
        channel=Channel.VOICE,
        direction=Direction.INBOUND,
        kind=InteractionKind.TRANSCRIPT,
        identifiers=(Identifier(kind=IdentifierKind.PHONE, value=caller),),
        display_name=form.get("CallerName") or None,
        content=Content(text=form.get("TranscriptionText") or "", attachments=_recording(form)),
        provider=ProviderRefs(
            provider=PROVIDER,
            message_id=sid,
            thread_id=call_sid,
            raw_status=form.get("TranscriptionStatus") or None,
        ),
    )


def _placed_by_us(form: Mapping[str, str]) -> bool:
    return (form.get("Direction") or "inbound").lower().startswith("outbound")


def _caller(form: Mapping[str, str], what: str) -> str:
    caller = (form.get("From") or form.get("Caller") or "").strip()
    if not caller:
        raise NormalizationError(f"Twilio {what} without From")
    return caller


def _recording(form: Mapping[str, str]) -> tuple[Attachment, ...]:
    url = form.get("RecordingUrl")
    if not url:
        return ()
    name = form.get("RecordingSid") or url.rsplit("/", 1)[-1] or "recording"
    return (
        Attachment(
            filename=f"{name}.wav",
            content_type="audio/x-wav",  # what Twilio serves for a recording URL as given
            size_bytes=0,  # Twilio does not say; the audio stays at the URL
            url=url,
        ),
    )


def _timestamp(value: str | None, received_at: datetime) -> datetime:
    """RFC 2822 time of the status change ("Tue, 10 Jan 2023 18:30:02 +0000")."""
    if not value:
        return received_at
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise NormalizationError(f"Twilio Timestamp {value!r} is not an RFC 2822 date") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
