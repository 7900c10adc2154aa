"""Cases and the shared context that travels with them: lifecycle, timeline, effort, story."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from omnirouter.events.identifiers import Identifier
from omnirouter.events.models import (
    Channel,
    ContractModel,
    Direction,
    EntityId,
    EventEnvelope,
    RoutingDecision,
)

__all__ = [
    "CaseContext",
    "CaseEvent",
    "CaseEventKind",
    "CaseRouted",
    "CaseSnapshot",
    "CaseStatus",
    "CustomerEffort",
    "CustomerProfile",
    "IntentTag",
    "StatusChange",
    "TimelineEntry",
    "TimelineEntryKind",
]


class CaseStatus(StrEnum):
    """Where a case is in its lifecycle; every change is a :class:`CaseEvent`."""

    NEW = "new"
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class StatusChange(ContractModel):
    """One transition in a case's status history."""

    from_status: CaseStatus | None = Field(description="None when the case was opened.")
    to_status: CaseStatus
    at: AwareDatetime
    reason: str
    event_id: uuid.UUID | None = Field(default=None, description="The event that caused it.")


class CustomerEffort(ContractModel):
    """What the case has cost the customer so far, counted as it happened."""

    contacts: int = Field(ge=0, description="Messages, calls and forms from the customer.")
    channels_used: tuple[Channel, ...] = ()
    channel_switches: int = Field(
        ge=0, description="Contacts on a different channel than the contact before."
    )
    transfers: int = Field(ge=0, description="Hand-overs from one agent to another.")
    first_contact_at: AwareDatetime | None = None
    first_response_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    time_to_first_response_s: float | None = None
    time_to_resolution_s: float | None = None


class IntentTag(ContractModel):
    """An intent a configured rule found, with the evidence (deterministic and explainable)."""

    tag: str = Field(min_length=1, max_length=64)
    rule_id: str = Field(min_length=1, max_length=64)
    evidence: str = Field(max_length=200, description="The words that matched.")


class CaseSnapshot(ContractModel):
    """A case as it stands: status with history, channels, agents, effort and intents."""

    case_id: EntityId
    customer_id: EntityId
    status: CaseStatus
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    channels: tuple[Channel, ...] = ()
    subject: str | None = None
    queue: str | None = None
    assigned_agent_id: EntityId | None = None
    interaction_count: int = Field(default=0, ge=0)
    reopen_count: int = Field(default=0, ge=0)
    status_history: tuple[StatusChange, ...] = ()
    effort: CustomerEffort | None = None
    intents: tuple[IntentTag, ...] = ()
    agents: tuple[EntityId, ...] = Field(default=(), description="Agents who worked it, in order.")
    folded_case_ids: tuple[EntityId, ...] = Field(
        default=(), description="Cases of merged customers folded into this one."
    )


class TimelineEntryKind(StrEnum):
    """What a timeline entry records."""

    MESSAGE = "message"
    REPLY = "reply"
    SYSTEM = "system"


class TimelineEntry(ContractModel):
    """One thing that happened with the customer, on any channel, in either direction."""

    entry_id: str = Field(description="The event_id it came from; unique in the timeline.")
    at: AwareDatetime
    kind: TimelineEntryKind
    direction: Direction | None = None
    channel: Channel | None = None
    case_id: EntityId | None = None
    text: str = Field(default="", max_length=4000)
    subject: str | None = None
    agent_id: EntityId | None = None
    attachments: int = Field(default=0, ge=0)
    system_type: str | None = Field(
        default=None, description='For system entries: "merge", "status", "reassignment"...'
    )


class CustomerProfile(ContractModel):
    """Who the customer is, from their events and the profile API."""

    customer_id: EntityId
    name: str | None = None
    language: str | None = None
    tier: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    identifiers: tuple[Identifier, ...] = ()


class CaseContext(ContractModel):
    """Everything an agent needs to not ask the customer to repeat themselves."""

    profile: CustomerProfile
    recent_timeline: tuple[TimelineEntry, ...] = Field(
        default=(), description="The last entries across every channel, oldest first."
    )
    previous_agents: tuple[EntityId, ...] = Field(default=(), description="Most recent first.")
    contacts_last_7_days: int = Field(default=0, ge=0)
    repeat_contact: bool = False
    story_so_far: str = Field(default="", max_length=4000)


class CaseEventKind(StrEnum):
    """Why a case event was published."""

    OPENED = "opened"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    REOPENED = "reopened"
    FOLDED = "folded"


class CaseEvent(EventEnvelope):
    """A change to a case: opened, a message added, a status transition, a merge folded in."""

    kind: CaseEventKind
    case: CaseSnapshot
    context: CaseContext
    transition: StatusChange | None = None
    cause_event_id: uuid.UUID | None = None


class CaseRouted(EventEnvelope):
    """A routed case with the shared customer context an agent desktop shows."""

    case: CaseSnapshot
    decision: RoutingDecision
    context: CaseContext

    @model_validator(mode="after")
    def _same_case(self) -> Self:
        if (self.decision.case_id, self.decision.customer_id) != (
            self.case.case_id,
            self.case.customer_id,
        ):
            raise ValueError("decision must be for the same case and customer as the snapshot")
        return self
