"""Planning a replay around an erasure (pure): the erasure is a step of both passes at its place
in the log, the erased person's earlier steps are marked with it, and an event that was in
flight across the erasure keeps the side of it the identity worker saw."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from omnirouter.events import (
    CustomerErased,
    EventEnvelope,
    InteractionEvent,
    ResolvedInteraction,
    encode,
)
from omnirouter.ops.replay import CaseEntry, Erase, LoggedRecord, RebuildPlan, Resolve, plan_rebuild
from omnirouter.pipeline.identity.policy import IdentityPolicy
from support.events import identifier, inbound

ANN, NEWCOMER, BOB = "cus_ann", "cus_newcomer", "cus_bob"
ERASURE_ID = uuid.uuid4()


def _record(at_ms: int, topic_key: str, event: EventEnvelope) -> LoggedRecord:
    return LoggedRecord(at_ms, topic_key, 0, at_ms, encode(event))


def _resolved(event: InteractionEvent, customer_id: str) -> ResolvedInteraction:
    return ResolvedInteraction(
        occurred_at=event.occurred_at,
        customer_id=customer_id,
        interaction=event,
        is_new_customer=True,
        identifiers=event.identifiers,
    )


def _erasure(*customer_ids: str) -> CustomerErased:
    return CustomerErased(
        event_id=ERASURE_ID,
        occurred_at=datetime.now(UTC),
        customer_id=customer_ids[0],
        erased_customer_ids=customer_ids,
        identifiers=1,
        cases=0,
        timeline_entries=0,
        merge_records=0,
        merge_reviews=0,
        routing_entries=0,
    )


def _plan(records: list[LoggedRecord]) -> RebuildPlan:
    return plan_rebuild(
        sorted(records, key=lambda r: r.offset), policy=IdentityPolicy(), intent_rules=()
    )


def _event_ids(steps: list[object]) -> list[object]:
    return [
        s.request.event_id if isinstance(s, Resolve) else "erasure" if isinstance(s, Erase) else s
        for s in steps
    ]


def test_the_erased_persons_earlier_steps_are_marked_with_the_erasure_in_both_passes() -> None:
    ann = inbound("email", identifier("email", "ann@example.com"))
    bob = inbound("sms", identifier("phone", "+15550104601"))
    again = inbound("email", identifier("email", "ann@example.com"))
    plan = _plan(
        [
            _record(10, "interactions.inbound", ann),
            _record(11, "interactions.resolved", _resolved(ann, ANN)),
            _record(12, "interactions.inbound", bob),
            _record(13, "interactions.resolved", _resolved(bob, BOB)),
            _record(20, "customers.erased", _erasure(ANN)),
            _record(30, "interactions.inbound", again),
            _record(31, "interactions.resolved", _resolved(again, NEWCOMER)),
        ]
    )

    assert _event_ids(plan.identity) == [ann.event_id, bob.event_id, "erasure", again.event_id]
    marks = [s.erased_by for s in plan.identity if not isinstance(s, Erase)]
    assert marks == [str(ERASURE_ID), None, None]
    cases = [(s.customer_id, s.erased_by) for s in plan.cases if isinstance(s, CaseEntry)]
    assert cases == [(ANN, str(ERASURE_ID)), (BOB, None), (NEWCOMER, None)]
    assert [type(s) for s in plan.cases].index(Erase) == 2  # between Bob and the newcomer


def test_an_event_in_flight_across_the_erasure_keeps_the_side_the_worker_resolved_it_on() -> None:
    before_removal = inbound("sms", identifier("phone", "+15550104602"))
    after_removal = inbound("sms", identifier("phone", "+15550104602"))
    plan = _plan(
        [
            _record(10, "interactions.inbound", before_removal),
            _record(11, "interactions.inbound", after_removal),
            _record(20, "customers.erased", _erasure(ANN)),
            # Both were resolved after the erasure was announced: the first still to Ann (the
            # removal had not run yet), the second to a new customer (it had).
            _record(21, "interactions.resolved", _resolved(before_removal, ANN)),
            _record(22, "interactions.resolved", _resolved(after_removal, NEWCOMER)),
        ]
    )

    assert _event_ids(plan.identity) == [before_removal.event_id, "erasure", after_removal.event_id]
    marks = [s.erased_by for s in plan.identity if isinstance(s, Resolve)]
    assert marks == [str(ERASURE_ID), None]


def test_a_log_without_erasures_plans_as_before() -> None:
    first = inbound("email", identifier("email", "cy@example.com"))
    plan = _plan(
        [
            _record(10, "interactions.inbound", first),
            _record(11, "interactions.resolved", _resolved(first, "cus_cy")),
        ]
    )
    assert _event_ids(plan.identity) == [first.event_id]
    assert all(
        s.erased_by is None for s in [*plan.identity, *plan.cases] if not isinstance(s, Erase)
    )
