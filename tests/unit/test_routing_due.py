"""Which cases of a case-worker batch routing looks at, including after a crash (pure)."""

from __future__ import annotations

from omnirouter.pipeline.cases.store import EntryOutcome
from omnirouter.pipeline.routing.requests import RoutingDue, routing_due


def outcome(
    event_id: str, case_id: str, *, opened: bool = False, reopened: bool = False, replayed: bool
) -> EntryOutcome:
    return EntryOutcome(
        event_id=event_id,
        type="inbound",
        case_id=case_id,
        transitions=(),
        opened=case_id if opened else "",
        reopened=case_id if reopened else "",
        moved_cases=(),
        error="",
        replayed=replayed,
    )


def test_a_new_case_is_routed_with_the_event_that_opened_it_as_cause() -> None:
    outcomes = [
        outcome("e1", "c1", opened=True, replayed=False),
        outcome("e2", "c1", replayed=False),
    ]
    assert routing_due("c1", "new", outcomes) == RoutingDue("e1", replay_only=False)


def test_a_case_left_new_by_a_crash_is_routed_again_with_the_same_cause() -> None:
    outcomes = [outcome("e1", "c1", opened=True, replayed=True)]
    assert routing_due("c1", "new", outcomes) == RoutingDue("e1", replay_only=False)


def test_a_queued_case_whose_opener_is_redelivered_has_its_decision_announced_again() -> None:
    outcomes = [outcome("e1", "c1", opened=True, replayed=True)]
    assert routing_due("c1", "queued", outcomes) == RoutingDue("e1", replay_only=True)
    reopened = [outcome("e9", "c1", reopened=True, replayed=True)]
    assert routing_due("c1", "offered", reopened) == RoutingDue("e9", replay_only=True)


def test_a_later_message_to_a_queued_case_routes_nothing() -> None:
    assert routing_due("c1", "queued", [outcome("e2", "c1", replayed=False)]) is None
    assert routing_due("c1", "queued", [outcome("e2", "c1", replayed=True)]) is None


def test_a_case_past_routing_is_never_announced_again() -> None:
    for status in ("assigned", "waiting_on_customer", "resolved", "closed"):
        assert routing_due("c1", status, [outcome("e1", "c1", opened=True, replayed=True)]) is None
