"""What routing needs to know about a case, taken from the case and its context (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnirouter.events import CaseContext, Channel, TimelineEntryKind
from omnirouter.pipeline.cases.store import EntryOutcome, as_list
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


@dataclass(frozen=True, slots=True)
class RoutingDue:
    """A case of a case-worker batch that routing must look at, and why."""

    cause: str
    replay_only: bool


# Statuses in which a case is still in routing's hands: its announcement may still be owed.
_IN_ROUTING = frozenset({"queued", "offered"})


def routing_due(case_id: str, status: str, outcomes: Sequence[EntryOutcome]) -> RoutingDue | None:
    """Whether a case touched by a batch is routed, and with which cause (the event that
    opened or reopened it, so a redelivery of that event repeats the same cause).

    A new case is routed. A case routing already took up is looked at again only when the
    event that opened it is redelivered (a crash came after routing changed its state, maybe
    before the decision was published): then the decision made for it is announced again.
    """
    opener = next((o for o in outcomes if case_id in (o.opened, o.reopened)), None)
    if status == "new":
        first = opener or next((o for o in outcomes if o.case_id == case_id), None)
        return RoutingDue(first.event_id if first else case_id, replay_only=False)
    if opener is not None and opener.replayed and status in _IN_ROUTING:
        return RoutingDue(opener.event_id, replay_only=True)
    return None
