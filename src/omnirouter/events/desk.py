"""What agents do at the desktop: every action is an event, for audit and for ops."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from omnirouter.events.models import EntityId, EventEnvelope

__all__ = ["AgentAction", "AgentActionKind"]


class AgentActionKind(StrEnum):
    """The actions an agent takes."""

    SIGNED_IN = "signed_in"
    SIGNED_OUT = "signed_out"
    PRESENCE = "presence"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REPLIED = "replied"
    NOTE = "note"
    TRANSFERRED = "transferred"
    RESOLVED = "resolved"
    VIEWED = "viewed"


class AgentAction(EventEnvelope):
    """One thing an agent did, with what it concerned."""

    agent_id: EntityId
    action: AgentActionKind
    case_id: EntityId | None = None
    customer_id: EntityId | None = None
    detail: dict[str, str] = Field(default_factory=dict)
