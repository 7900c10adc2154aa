"""What routing needs to know about a case, taken from the case and its context (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from omnirouter.events import CaseContext, Channel, TimelineEntryKind
from omnirouter.pipeline.cases.store import as_list
from omnirouter.pipeline.routing.decide import RoutingRequest


def request_for_case(tenant: str, doc: dict[str, Any], context: CaseContext) -> RoutingRequest:
    """The routing request of a case that has just opened or reopened."""
    effort = doc.get("effort") or {}
    channels = as_list(doc.get("channels"))
    channel = Channel(effort.get("last_channel") or (channels[-1] if channels else "api"))
    last_message = next(
        (
            t.text
            for t in reversed(context.recent_timeline)
            if t.kind is TimelineEntryKind.MESSAGE and t.case_id == doc["case_id"]
        ),
        "",
    )
    profile = context.profile
    return RoutingRequest(
        case_id=doc["case_id"],
        customer_id=doc["customer_id"],
        tenant=tenant,
        channel=channel,
        opened_at=datetime.fromtimestamp(doc["opened_at"] / 1000, tz=UTC),
        language=profile.language,
        tier=profile.tier,
        intents=tuple(t["tag"] for t in as_list(doc.get("intents"))),
        repeat_contact=context.repeat_contact,
        text=last_message,
        attributes=dict(profile.attributes),
        previous_agents=context.previous_agents,
    )
