"""What the case worker announces for one customer's update: pure, no I/O.

A customer's applied batch becomes its case events (with the context an agent sees) and, with
a router, the cases that are due for routing. Kept apart from the worker so the worker can
build one customer's announcements while Redis applies the next customers' entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from omnirouter.events import CaseContext, DeadLetter
from omnirouter.logs import get_logger
from omnirouter.pipeline.cases.operations import case_contexts, describe_update
from omnirouter.pipeline.cases.snapshot import uuid_or_none
from omnirouter.pipeline.cases.store import CustomerUpdate
from omnirouter.pipeline.routing.batch import NewCase
from omnirouter.pipeline.routing.requests import request_for_case, routing_due
from omnirouter.pipeline.stream import Outgoing

if TYPE_CHECKING:
    from omnirouter.pipeline.cases.store import CustomerRef

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Announcement:
    """One customer's case events, and the cases of theirs to route (empty without a router)."""

    events: list[Outgoing]
    new_cases: list[NewCase]


def announce(
    ref: CustomerRef, update: CustomerUpdate, *, now: datetime, routing: bool
) -> Announcement:
    """The case events of ``update`` (one per transition, else one update per entry), each
    with its case's context, and the cases it leaves due for routing. Refused entries cause
    none (the worker logs them)."""
    tenant, customer_id = ref
    contexts = case_contexts(customer_id, update)
    events = [
        Outgoing("cases.events", customer_id, event)
        for event in describe_update(tenant, customer_id, update, contexts=contexts, now=now)
    ]
    return Announcement(events, _new_cases(tenant, update, contexts) if routing else [])


def _new_cases(
    tenant: str, update: CustomerUpdate, contexts: dict[str, CaseContext]
) -> list[NewCase]:
    # A case that is new (just opened or reopened, or left unrouted by a crash before its
    # routing) is routed; routing itself ignores a case already offered or assigned. A
    # redelivered opener re-announces its decision: a crash may have come before it was
    # published, after the case had left "new".
    cases: list[NewCase] = []
    for case_id, doc in update.cases.items():
        due = routing_due(case_id, doc.get("status", ""), update.outcomes)
        if due is not None:
            request = request_for_case(tenant, doc, contexts[case_id])
            cases.append(NewCase(request, due.cause, replay_only=due.replay_only))
    return cases


def combined(earlier: CustomerUpdate, later: CustomerUpdate) -> CustomerUpdate:
    """One customer's two updates of a batch as one: every outcome, the latest documents."""
    if earlier.folded_into:
        return later
    return CustomerUpdate(
        folded_into=later.folded_into,
        outcomes=earlier.outcomes + later.outcomes,
        cases={**earlier.cases, **later.cases},
        context=later.context or earlier.context,
    )


def closed_cases(update: CustomerUpdate) -> set[str]:
    """Cases a batch closed (folded into the survivor's case by a merge)."""
    return {
        t["case_id"]
        for outcome in update.outcomes
        for t in outcome.transitions
        if t.get("to") == "closed" and t.get("case_id")
    }


def warn_refused(updates: dict[CustomerRef, CustomerUpdate]) -> None:
    """Log the entries the case script refused, once each (they are announced as nothing)."""
    for update in updates.values():
        for outcome in update.outcomes:
            if outcome.error:
                log.warning("case entry refused", event_id=outcome.event_id, error=outcome.error)


def dead_entry(
    ref: CustomerRef,
    entry: dict[str, Any],
    reason: str,
    *,
    stage: str,
    error_type: str = "CaseStoreRefused",
) -> Outgoing:
    """A case entry that cannot be applied, as a dead letter keeping the entry and why."""
    tenant, customer_id = ref
    letter = DeadLetter.for_payload(
        orjson.dumps(entry),
        customer_id.encode(),
        stage=stage,
        reason=reason[:2000],
        error_type=error_type,
        tenant=tenant,
        causation_id=uuid_or_none(entry.get("event_id")),
    )
    return Outgoing("deadletter", customer_id, letter)
