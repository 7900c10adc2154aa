"""The case lifecycle: which status may follow which."""

from __future__ import annotations

import itertools

import orjson
import pytest

from omnirouter.events import CaseStatus
from omnirouter.pipeline.cases.lifecycle import (
    ALLOWED_TRANSITIONS,
    OPEN_STATUSES,
    can_transition,
    transition_table,
)

S = CaseStatus
ALL_PAIRS = list(itertools.product(CaseStatus, CaseStatus))


def test_open_statuses_are_exactly_the_ones_a_customer_still_waits_on() -> None:
    assert {str(s) for s in OPEN_STATUSES} == {
        "new",
        "queued",
        "offered",
        "assigned",
        "waiting_on_customer",
    }


def test_every_status_has_an_entry_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(CaseStatus)


@pytest.mark.parametrize("target", list(CaseStatus))
def test_closed_is_terminal(target: CaseStatus) -> None:
    assert not can_transition(S.CLOSED, target)


@pytest.mark.parametrize("target", list(CaseStatus))
def test_resolved_may_only_be_reopened_or_closed(target: CaseStatus) -> None:
    assert can_transition(S.RESOLVED, target) is (target in {S.NEW, S.CLOSED})


@pytest.mark.parametrize("status", list(CaseStatus))
def test_no_status_transitions_to_itself(status: CaseStatus) -> None:
    assert not can_transition(status, status)


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES))
def test_every_open_case_can_be_resolved_and_closed(status: CaseStatus) -> None:
    assert can_transition(status, S.RESOLVED)
    assert can_transition(status, S.CLOSED)


@pytest.mark.parametrize("status", sorted(set(CaseStatus) - {S.RESOLVED}))
def test_only_a_resolved_case_goes_back_to_new(status: CaseStatus) -> None:
    assert not can_transition(status, S.NEW)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.OFFERED, S.QUEUED),  # a declined or expired offer goes back to the queue
        (S.ASSIGNED, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_CUSTOMER, S.ASSIGNED),
        (S.QUEUED, S.ASSIGNED),
    ],
)
def test_routing_and_desktop_moves_are_allowed(current: CaseStatus, target: CaseStatus) -> None:
    assert can_transition(current, target)


def test_transition_table_is_plain_json_with_sorted_targets() -> None:
    table = transition_table()
    assert orjson.loads(orjson.dumps(table)) == table
    assert all(type(k) is str for k in table)
    for targets in table.values():
        assert all(type(t) is str for t in targets)
        assert targets == sorted(targets)
    assert table["closed"] == []
    assert table["resolved"] == ["closed", "new"]


def test_transition_table_names_every_status() -> None:
    assert set(transition_table()) == {str(s) for s in CaseStatus}


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_transition_table_agrees_with_can_transition(
    current: CaseStatus, target: CaseStatus
) -> None:
    assert (str(target) in transition_table()[str(current)]) is can_transition(current, target)
