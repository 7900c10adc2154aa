"""The web chat socket's frames, and a visitor's message as an interaction event (pure).

The browser widget (``static/widget.js``) and the gateway speak JSON text frames:

- widget -> gateway: ``message`` (``client_message_id``, ``text``) and ``identify`` (``email``,
  ``phone``), after which the visitor's messages carry those identifiers too;
- gateway -> widget: ``ack`` once Kafka acknowledged a message, ``error`` with the reason (and
  whether sending again may succeed), ``identified``, and ``message`` for an agent's reply,
  exactly as the outbound dispatcher publishes it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from omnirouter.channels.errors import NormalizationError
from omnirouter.events import (
    DEFAULT_TENANT,
    MAX_IDENTIFIER_LENGTH,
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

PROVIDER = "webchat"
MAX_TEXT_CHARS = 4000
"""Longest chat message accepted; longer ones are refused with an error frame."""
MAX_FRAME_BYTES = 64 * 1024
"""Longest frame parsed: room for MAX_TEXT_CHARS even when every character is JSON-escaped."""
MAX_PHONE_CHARS = 32

_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Deliberately loose: the identity worker normalizes (E.164, lower case) and rejects with a
# reason; here we only refuse what is plainly not an address, so the visitor can correct it.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ().-]{4,}$")

_CLIENT_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
ClientMessageId = Annotated[str, StringConstraints(pattern=_CLIENT_MESSAGE_ID.pattern)]


class FrameError(ValueError):
    """A frame the gateway cannot act on; ``reason`` is what the widget shows.

    ``malformed`` frames (not JSON, not a frame of this protocol) are dead-lettered as well;
    the others (too long, empty, an address that does not look right) are the visitor's to
    correct and only answered.
    """

    def __init__(
        self, reason: str, *, client_message_id: str | None = None, malformed: bool = False
    ) -> None:
        """Refuse a frame for ``reason`` (``client_message_id`` when the frame named one)."""
        super().__init__(reason)
        self.reason = reason
        self.client_message_id = client_message_id
        self.malformed = malformed


class _Frame(BaseModel):
    # Unknown fields are ignored, so an older gateway keeps serving a newer widget.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChatMessage(_Frame):
    """The visitor wrote something."""

    type: Literal["message"]
    client_message_id: ClientMessageId
    text: str


class Identify(_Frame):
    """The visitor left an e-mail address and/or phone number so agents can reach them."""

    type: Literal["identify"]
    email: str | None = None
    phone: str | None = None


ClientFrame = Annotated[ChatMessage | Identify, Field(discriminator="type")]
_CLIENT_FRAME: TypeAdapter[ChatMessage | Identify] = TypeAdapter(ClientFrame)
_ANY_OBJECT: TypeAdapter[dict[str, object]] = TypeAdapter(dict[str, object])


class Ack(_Frame):
    """The message is durably in Kafka (or was already): the widget shows ✓."""

    type: Literal["ack"] = "ack"
    client_message_id: str
    event_id: uuid.UUID


class ErrorFrame(_Frame):
    """A frame was not accepted; ``retryable`` says whether sending it again may succeed."""

    type: Literal["error"] = "error"
    client_message_id: str | None = None
    reason: str
    retryable: bool = False


class Identified(_Frame):
    """The identifiers the visitor's later messages will carry."""

    type: Literal["identified"] = "identified"
    email: str | None = None
    phone: str | None = None


class AgentReply(_Frame):
    """An agent's reply, as the outbound dispatcher publishes it to ``ChatKeys.channel``."""

    type: Literal["message"] = "message"
    event_id: str = Field(min_length=1)
    text: str
    agent_id: str | None = None
    at: AwareDatetime


class VisitorProfile(BaseModel):
    """What a visitor told us about themselves; remembered per visitor in Redis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = None
    phone: str | None = None

    def updated(self, identify: Identify) -> VisitorProfile:
        """This profile with the fields ``identify`` gives replaced (the others kept)."""
        email, phone = identify_values(identify)
        return VisitorProfile(email=email or self.email, phone=phone or self.phone)

    def to_redis(self) -> dict[str, str]:
        """The HASH fields to store (unset fields are left out)."""
        return {k: v for k, v in (("email", self.email), ("phone", self.phone)) if v}

    @classmethod
    def from_redis(
        cls,
        fields: Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str],
    ) -> VisitorProfile:
        """The profile stored by :meth:`to_redis` (bytes or str, as the client returns it)."""
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        return cls(email=text.get("email") or None, phone=text.get("phone") or None)


def connection_problem(visitor_id: str, tenant: str) -> str | None:
    """Why a socket with these query parameters is refused, or None when it is fine."""
    if not _VISITOR_ID.fullmatch(visitor_id):
        return "visitor_id must be 1-128 characters of A-Z, a-z, 0-9, _ or -"
    if not _TENANT.fullmatch(tenant):
        return "tenant must be 1-63 characters of a-z, 0-9, _ or -, starting with a letter or digit"
    return None


def parse_client_frame(raw: str | bytes) -> ChatMessage | Identify:
    """The frame the widget sent.

    Raises:
        FrameError: not JSON, not a known frame, or a message past :data:`MAX_TEXT_CHARS`;
            the ``client_message_id`` is kept when the frame had a usable one, so the widget
            can mark the right message as failed.
    """
    if len(raw.encode() if isinstance(raw, str) else raw) > MAX_FRAME_BYTES:
        # Not dead-lettered: a frame this size is no message the widget sends, and could be
        # larger than the broker takes.
        raise FrameError(f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        frame = _CLIENT_FRAME.validate_json(raw)
    except ValidationError as exc:
        raise FrameError(
            _describe(exc), client_message_id=_peek_message_id(raw), malformed=True
        ) from None
    if isinstance(frame, ChatMessage):
        if len(frame.text) > MAX_TEXT_CHARS:
            raise FrameError(
                f"message longer than {MAX_TEXT_CHARS} characters",
                client_message_id=frame.client_message_id,
            )
        if not frame.text.strip():
            raise FrameError("empty message", client_message_id=frame.client_message_id)
    else:
        identify_values(frame)
    return frame


def identify_values(frame: Identify) -> tuple[str | None, str | None]:
    """The e-mail address and phone number of ``frame``, trimmed (None when left blank).

    Raises:
        FrameError: neither is given, or one is plainly not an address.
    """
    email = (frame.email or "").strip() or None
    phone = (frame.phone or "").strip() or None
    if email is None and phone is None:
        raise FrameError("leave an e-mail address or a phone number")
    if email is not None and (len(email) > MAX_IDENTIFIER_LENGTH or not _EMAIL.fullmatch(email)):
        raise FrameError("that e-mail address does not look right")
    if phone is not None and (len(phone) > MAX_PHONE_CHARS or not _PHONE.fullmatch(phone)):
        raise FrameError("that phone number does not look right")
    return email, phone


def message_event_id(visitor_id: str, client_message_id: str) -> uuid.UUID:
    """The event id of a visitor's message: the same each time the widget resends it."""
    return provider_event_id(PROVIDER, dedupe_id(visitor_id, client_message_id))


def dedupe_id(visitor_id: str, client_message_id: str) -> str:
    """The provider message id the gateway's retry check remembers (unique per visitor)."""
    return f"{visitor_id}:{client_message_id}"


def normalize_message(
    message: ChatMessage,
    *,
    visitor_id: str,
    profile: VisitorProfile,
    received_at: datetime,
    tenant: str = DEFAULT_TENANT,
) -> InteractionEvent:
    """A visitor's chat message, from the chat visitor id plus what they told us.

    The visitor id comes first: it is the event's Kafka key, so one visitor's messages stay in
    order on one partition.

    Raises:
        NormalizationError: the frame makes no valid event.
    """
    identifiers = [Identifier(kind=IdentifierKind.CHAT_VISITOR, value=visitor_id)]
    if profile.email:
        identifiers.append(Identifier(kind=IdentifierKind.EMAIL, value=profile.email))
    if profile.phone:
        identifiers.append(Identifier(kind=IdentifierKind.PHONE, value=profile.phone))
    try:
        return InteractionEvent(
            event_id=message_event_id(visitor_id, message.client_message_id),
            tenant=tenant,
            # The browser's clock is not trusted: the message happened when it reached us.
            occurred_at=received_at,
            received_at=received_at,
            channel=Channel.WEBCHAT,
            direction=Direction.INBOUND,
            kind=InteractionKind.MESSAGE,
            identifiers=tuple(identifiers),
            content=Content(text=message.text),
            provider=ProviderRefs(
                provider=PROVIDER,
                message_id=message.client_message_id,
                conversation_id=visitor_id,
            ),
        )
    except ValidationError as exc:
        raise NormalizationError(_describe(exc)) from None


def parse_agent_reply(raw: str | bytes) -> AgentReply:
    """A reply the dispatcher published for the visitor.

    Raises:
        ValidationError: not the dispatcher's reply format.
    """
    return AgentReply.model_validate_json(raw)


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return "frame is not valid JSON"
    # The first part of a field's location is the frame type the union picked; leave it out.
    where = ".".join(str(part) for part in first["loc"][1:])
    if not where:
        return 'frame must be a JSON object with "type" "message" or "identify"'
    return f"{where}: {first['msg']}"


def _peek_message_id(raw: str | bytes) -> str | None:
    """The client_message_id of a frame that failed validation, when it has a usable one."""
    try:
        loose = _ANY_OBJECT.validate_json(raw)
    except ValidationError:
        return None
    value = loose.get("client_message_id")
    if isinstance(value, str) and _CLIENT_MESSAGE_ID.fullmatch(value):
        return value
    return None
