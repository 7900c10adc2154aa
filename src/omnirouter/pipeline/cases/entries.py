"""What the case script is asked to apply, built from events (pure).

Every value is derived from the event itself, never from the clock, so replaying the log
rebuilds exactly the same state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from omnirouter.events import (
    CaseStatus,
    CustomerMerged,
    InteractionEvent,
    ResolvedInteraction,
    derived_event_id,
)
from omnirouter.pipeline.cases.intents import IntentRule, tag_intents
from omnirouter.pipeline.cases.story import story_fragment

TIMELINE_TEXT_CHARS = 2000
CASE_ID_SEPARATOR = "."


def new_case_id(source_event_id: uuid.UUID, customer_id: str) -> str:
    """The id a case opened by ``source_event_id`` gets: the same on every replay.

    It ends with the customer's id, so the read API finds the case's keys from the id alone.
    """
    digest = derived_event_id(source_event_id, "case:new").hex[:16]
    return f"case_{digest}{CASE_ID_SEPARATOR}{customer_id}"


def customer_of_case(case_id: str) -> str | None:
    """The customer a case was opened for (it may since have been merged into another)."""
    prefix, sep, customer = case_id.partition(CASE_ID_SEPARATOR)
    return customer if sep and prefix.startswith("case_") and len(prefix) > 5 and customer else None


def millis(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def inbound_entry(resolved: ResolvedInteraction, rules: tuple[IntentRule, ...]) -> dict[str, Any]:
    """A customer's message, call, transcript or form, for their case and timeline."""
    event = resolved.interaction
    text = event.content.text
    # The message replied to first, then the thread from newest to oldest, each once.
    refs = list(
        dict.fromkeys(
            r for r in (event.provider.in_reply_to, *reversed(event.provider.references)) if r
        )
    )
    intents = tag_intents(f"{event.content.subject or ''}\n{text}", rules)
    return {
        "type": "inbound",
        "event_id": str(event.event_id),
        "at": millis(event.occurred_at),
        "channel": str(event.channel),
        "kind": str(event.kind),
        "text": text[:TIMELINE_TEXT_CHARS],
        "subject": event.content.subject or "",
        "attachments": len(event.content.attachments),
        "message_id": event.provider.message_id or "",
        "refs": refs,
        "case_new": new_case_id(event.event_id, resolved.customer_id),
        "fragment": story_fragment(text, event.content.subject),
        # The fields of IntentTag, in its order: a literal costs a fraction of model_dump().
        "intents": [{"tag": t.tag, "rule_id": t.rule_id, "evidence": t.evidence} for t in intents],
        "profile": {
            "name": event.display_name or "",
            "language": event.attributes.get("language", event.content.language or "") or "",
            "tier": event.attributes.get("tier", ""),
            "attributes": {
                k: v for k, v in event.attributes.items() if k not in {"language", "tier"}
            },
        },
        "identifiers": [i.address for i in resolved.identifiers],
    }


def outbound_entry(event: InteractionEvent) -> dict[str, Any]:
    """An agent's reply (or a notification) to the customer, for their case and timeline."""
    return {
        "type": "outbound",
        "kind": str(event.kind),
        "status": event.provider.raw_status or "",
        "event_id": str(event.event_id),
        "at": millis(event.occurred_at),
        "channel": str(event.channel),
        "text": event.content.text[:TIMELINE_TEXT_CHARS],
        "subject": event.content.subject or "",
        "attachments": len(event.content.attachments),
        "agent_id": event.agent_id or "",
        "case_id": event.case_id or "",
        "message_id": event.provider.message_id or "",
    }


def status_entry(
    event_id: uuid.UUID,
    at: datetime,
    *,
    case_id: str | None,
    to: CaseStatus | None,
    reason: str,
    agent_id: str | None = None,
    queue: str | None = None,
) -> dict[str, Any]:
    """A status transition, assignment or queue change (from routing or the desktop)."""
    return {
        "type": "status",
        "event_id": str(event_id),
        "at": millis(at),
        "case_id": case_id or "",
        "to": str(to) if to else "",
        "reason": reason,
        "agent_id": agent_id or "",
        "queue": queue or "",
    }


def fold_entry(merged: CustomerMerged, export: dict[str, Any]) -> dict[str, Any]:
    """Fold a merged-away customer's cases and timeline into the survivor's."""
    return {
        "type": "fold",
        "event_id": str(merged.event_id),
        "at": millis(merged.occurred_at),
        "absorbed_id": merged.absorbed_id,
        "reason": (
            f"shared {merged.linking_identifier.kind} {merged.linking_identifier.value}"
            if merged.linking_identifier
            else merged.cause
        )[:300],
        "export": export,
    }


def profile_entry(
    event_id: uuid.UUID,
    at: datetime,
    *,
    name: str | None = None,
    language: str | None = None,
    tier: str | None = None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A profile update from the profile API (fields left None stay as they are)."""
    return {
        "type": "profile",
        "event_id": str(event_id),
        "at": millis(at),
        "profile": {
            "name": name or "",
            "language": language or "",
            "tier": tier or "",
            "attributes": attributes or {},
        },
    }


def note_entry(
    event_id: uuid.UUID, at: datetime, *, case_id: str, agent_id: str, text: str
) -> dict[str, Any]:
    """An agent's internal note on a case (agents see it on the timeline; customers never)."""
    return {
        "type": "note",
        "event_id": str(event_id),
        "at": millis(at),
        "case_id": case_id,
        "agent_id": agent_id,
        "text": text[:TIMELINE_TEXT_CHARS],
    }
