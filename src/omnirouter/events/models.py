"""The events omnirouter writes to Kafka: one pydantic model per message type."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from omnirouter.events.identifiers import Identifier, ProviderName, RejectedIdentifier

SCHEMA_VERSION = 1
"""The schema version this code writes."""
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
"""The schema versions this code can read; anything else is dead-lettered."""
DEFAULT_TENANT = "default"
MAX_TEXT_CHARS = 1_000_000

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""An opaque id minted by omnirouter or a provider: customer, case, agent, rule."""
Tenant = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ReasonValue = str | int | float | bool | None

# Fixed namespace so dead letters of the same record at the same stage get the same id on replay.
_DEAD_LETTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:omnirouter:deadletter")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# RFC 4122 version 5: the version nibble (bits 76-79) set to 5, the variant (bits 62-63) to 10.
_UUID_VERSION_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_BITS = (0x5000 << 64) | (0x8000 << 48)


def derived_event_id(source_id: uuid.UUID, stage: str) -> uuid.UUID:
    """Return the id of the event that `stage` derives from event `source_id`, stable on replay."""
    if not stage:
        raise ValueError("stage must not be empty")
    # uuid.uuid5(source_id, stage), computed directly: several ids per event on every stage,
    # and uuid5's import and UUID(bytes=..., version=...) checks cost more than the hash.
    name = source_id.bytes + stage.encode()
    digest = int.from_bytes(hashlib.sha1(name, usedforsecurity=False).digest()[:16])
    return uuid.UUID(int=digest & _UUID_VERSION_CLEAR | _UUID5_BITS)


class ContractModel(BaseModel):
    """Base of every contract model: frozen, and unknown fields are an error."""

    # Frozen: an event is a fact. extra="forbid": a misspelt field is an error, not lost data.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(StrEnum):
    """The channel a customer used."""

    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    VOICE = "voice"
    WEBCHAT = "webchat"
    WEBFORM = "webform"
    API = "api"


class Direction(StrEnum):
    """Whether an interaction came from the customer or goes to them."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class InteractionKind(StrEnum):
    """What sort of touchpoint an interaction is."""

    MESSAGE = "message"
    CALL = "call"
    TRANSCRIPT = "transcript"
    FORM_SUBMISSION = "form_submission"
    DELIVERY_STATUS = "delivery_status"


class EventEnvelope(ContractModel):
    """Fields every event carries: identity, version, tenant and timing."""

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Idempotency key: a replayed event keeps its id."
    )
    schema_version: int = Field(default=SCHEMA_VERSION, strict=True)
    tenant: Tenant = DEFAULT_TENANT
    occurred_at: AwareDatetime = Field(description="When it happened, by the provider's clock.")
    received_at: AwareDatetime = Field(
        default_factory=_utcnow, description="When omnirouter received it."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="The event this one was derived from."
    )

    @field_validator("schema_version")
    @classmethod
    def _supported_version(cls, version: int) -> int:
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            known = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
            raise ValueError(f"unknown schema_version {version} (this consumer knows {known})")
        return version


class Attachment(ContractModel):
    """Metadata of one attachment; the bytes stay with the provider or in object storage."""

    filename: str
    content_type: str
    size_bytes: int = Field(ge=0)
    content_id: str | None = Field(default=None, description="MIME Content-ID of inline parts.")
    url: str | None = None


class Content(ContractModel):
    """What the customer or agent said."""

    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    subject: str | None = None
    html: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: str | None = Field(default=None, description="BCP 47 tag, when the provider says.")
    attachments: tuple[Attachment, ...] = ()


class ProviderRefs(ContractModel):
    """The provider's own ids, kept so conversations can be threaded and replies matched."""

    provider: ProviderName
    message_id: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    conversation_id: str | None = None
    raw_status: str | None = Field(
        default=None, description="Provider's delivery/call status, verbatim."
    )


class InteractionEvent(EventEnvelope):
    """One normalized customer touchpoint, inbound from or outbound to the customer."""

    channel: Channel
    direction: Direction
    kind: InteractionKind = InteractionKind.MESSAGE
    identifiers: tuple[Identifier, ...] = Field(
        default=(),
        description="The customer's identifiers: the sender when inbound, recipient when outbound.",
    )
    display_name: str | None = None
    content: Content = Content()
    provider: ProviderRefs
    customer_id: EntityId | None = Field(default=None, description="Always known when outbound.")
    case_id: EntityId | None = None
    agent_id: EntityId | None = Field(default=None, description="Author of an outbound reply.")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Profile hints from the channel, e.g. language, tier."
    )

    @model_validator(mode="after")
    def _addressable(self) -> Self:
        # Each check guarantees the key of the topic this event is written to exists.
        if self.direction is Direction.INBOUND and not self.identifiers:
            raise ValueError("an inbound interaction needs at least one sender identifier")
        if self.direction is Direction.OUTBOUND and self.customer_id is None:
            raise ValueError("an outbound interaction needs the customer_id it is addressed to")
        return self

    @property
    def routing_key(self) -> str:
        """The Kafka key: the first identifier's address inbound, the customer_id outbound."""
        if self.direction is Direction.OUTBOUND and self.customer_id is not None:
            return self.customer_id
        return self.identifiers[0].address


class ResolvedInteraction(EventEnvelope):
    """An inbound interaction attributed to a customer by the identity worker."""

    customer_id: EntityId
    interaction: InteractionEvent
    is_new_customer: bool
    merged_customer_ids: tuple[EntityId, ...] = Field(
        default=(), description="Customer ids absorbed into customer_id while resolving this event."
    )
    identifiers: tuple[Identifier, ...] = Field(
        default=(), description="The event's identifiers after normalization (E.164, lower-case)."
    )
    rejected_identifiers: tuple[RejectedIdentifier, ...] = Field(
        default=(), description="Identifiers dropped as malformed or blocked, with the reason."
    )
    review_ids: tuple[EntityId, ...] = Field(
        default=(), description="Merge-review items this event raised instead of merging."
    )


class CustomerMerged(EventEnvelope):
    """Two customer records turned out to be one person; `absorbed_id` now points at survivor."""

    survivor_id: EntityId
    absorbed_id: EntityId
    cause: str = Field(min_length=1, description='Why, e.g. "shared identifier".')
    linking_identifier: Identifier | None = None
    moved_identifiers: tuple[Identifier, ...] = ()
    triggered_by_event_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.survivor_id == self.absorbed_id:
            raise ValueError("a customer cannot be merged into itself")
        return self


class RoutingReason(ContractModel):
    """One explainable step of a routing decision."""

    code: str = Field(min_length=1, description='Stable machine code, e.g. "skill_match".')
    message: str
    data: dict[str, ReasonValue] = Field(default_factory=dict)


class CandidateAgent(ContractModel):
    """An agent the router considered, with its score or why it was filtered out."""

    agent_id: EntityId
    score: float
    eligible: bool
    filtered_because: str | None = None


class RoutingOutcome(StrEnum):
    """What the router did with the case."""

    OFFERED = "offered"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    REJECTED = "rejected"


class RoutingDecision(EventEnvelope):
    """Where a case was sent and why; `event_id` is the decision id."""

    case_id: EntityId
    customer_id: EntityId
    queue: str | None = None
    strategy: str = Field(min_length=1)
    outcome: RoutingOutcome
    agent_id: EntityId | None = None
    rule_id: EntityId | None = None
    priority: int = 0
    candidates: tuple[CandidateAgent, ...] = ()
    reasons: tuple[RoutingReason, ...] = ()

    @model_validator(mode="after")
    def _agent_when_offered(self) -> Self:
        if self.outcome in (RoutingOutcome.OFFERED, RoutingOutcome.ASSIGNED) and not self.agent_id:
            raise ValueError(f"outcome {self.outcome} needs an agent_id")
        return self


class DeadLetter(EventEnvelope):
    """A record that could not be processed, kept byte-for-byte with where and why it failed."""

    stage: str = Field(min_length=1, description='Where it failed, e.g. "ingress", "identity".')
    reason: str = Field(min_length=1)
    error_type: str = Field(min_length=1)
    source_topic: str | None = None
    source_partition: int | None = Field(default=None, ge=0)
    source_offset: int | None = Field(default=None, ge=0)
    original_key_b64: str | None = None
    # Base64, not text: the bytes that failed may not be UTF-8 and must survive unchanged.
    original_value_b64: str
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("original_key_b64", "original_value_b64")
    @classmethod
    def _is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error as exc:
                raise ValueError("must be standard base64") from exc
        return value

    @classmethod
    def for_payload(
        cls,
        raw_value: bytes,
        raw_key: bytes | None,
        *,
        stage: str,
        reason: str,
        error_type: str,
        source_topic: str | None = None,
        source_partition: int | None = None,
        source_offset: int | None = None,
        headers: Mapping[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        causation_id: uuid.UUID | None = None,
    ) -> Self:
        """Build the dead letter for a failed record; `occurred_at` is now."""
        if source_topic is not None and source_partition is not None and source_offset is not None:
            # Deterministic for a known record, so re-failing it on replay dedupes downstream.
            where = f"{stage}|{source_topic}|{source_partition}|{source_offset}"
            event_id = uuid.uuid5(_DEAD_LETTER_NAMESPACE, where)
        else:
            event_id = uuid.uuid4()
        now = _utcnow()
        return cls(
            event_id=event_id,
            tenant=tenant,
            occurred_at=now,
            received_at=now,
            causation_id=causation_id,
            stage=stage,
            reason=reason,
            error_type=error_type,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            original_key_b64=None if raw_key is None else base64.b64encode(raw_key).decode("ascii"),
            original_value_b64=base64.b64encode(raw_value).decode("ascii"),
            headers=dict(headers or {}),
        )

    def original_value(self) -> bytes:
        """Return the failed record's value, byte for byte."""
        return base64.b64decode(self.original_value_b64)

    def original_key(self) -> bytes | None:
        """Return the failed record's key, byte for byte, or None if it had none."""
        return None if self.original_key_b64 is None else base64.b64decode(self.original_key_b64)
