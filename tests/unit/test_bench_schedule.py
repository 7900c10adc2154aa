"""The bench's open-loop schedule and the ids that carry each event's intended send time."""

from __future__ import annotations

import uuid

import pytest

from omnirouter.bench.schedule import (
    StepPlan,
    bench_event_id,
    due_count,
    intended_at,
    parse_bench_id,
)


def test_events_are_due_at_fixed_intervals_from_the_start_whatever_happened_before() -> None:
    """Open loop: how many are due depends on the clock only, never on what was sent."""
    assert due_count(-0.001, 1000, 10_000) == 0
    assert due_count(0.0, 1000, 10_000) == 1  # event 0 is due at the start itself
    assert due_count(0.0999, 1000, 10_000) == 100
    assert due_count(0.1, 1000, 10_000) == 101
    # A generator that stalled for a second owes the whole second at once, as a burst.
    assert due_count(1.0, 1000, 10_000) == 1001
    assert due_count(60.0, 1000, 10_000) == 10_000


def test_latency_is_measured_from_the_intended_time_not_the_send_time() -> None:
    """Event i of a step is intended at t0 + i/rate, so a late send counts as latency."""
    plan = StepPlan(step=3, rate=2000.0, t0=100.0, warmup_s=2.0, steady_s=5.0)
    assert plan.total == 14_000
    assert plan.intended(0) == 100.0
    assert plan.intended(4000) == pytest.approx(102.0)
    assert plan.steady_from == 102.0
    assert plan.ends_at == 107.0
    assert intended_at(100.0, 2000.0, 1) == pytest.approx(100.0005)
    assert plan.due(101.0) == 2001


def test_a_step_planned_as_count_over_rate_holds_exactly_count_events() -> None:
    """The catch-up's burst: rate x (count / rate) can land a hair above count in floating
    point, which once planned one event more than was ever sent."""
    rates = [1_000.0 + 7.3 * i for i in range(2_600)]  # fractional, as 0.8 x a capacity is
    wrong = [r for r in rates if StepPlan(1, r, 0.0, 0.0, 30_000 / r).total != 30_000]
    assert not wrong, f"{len(wrong)} rates, e.g. {wrong[:3]}"


def test_an_event_id_names_its_run_step_and_index_and_is_a_valid_uuid() -> None:
    """The output consumer recovers step and index from the id alone."""
    text = bench_event_id(0xDEADBEEF, 7, 123_456_789)
    assert str(uuid.UUID(text)) == text
    parsed = parse_bench_id(text.encode(), 0xDEADBEEF)
    assert parsed is not None
    assert (parsed.step, parsed.index) == (7, 123_456_789)


@pytest.mark.parametrize(
    "text",
    [
        bench_event_id(0x11111111, 1, 5),  # another run
        str(uuid.uuid5(uuid.UUID(bench_event_id(0xDEADBEEF, 1, 5)), "identity")),  # derived
        "not an id at all",
        "deadbeef-zzzz-4000-8000-000000000005",
    ],
)
def test_ids_that_are_not_this_runs_are_ignored_not_errors(text: str) -> None:
    """Records of merges, timers or other runs on the same topic are foreign, never a crash."""
    assert parse_bench_id(text, 0xDEADBEEF) is None


def test_ids_out_of_range_are_refused_when_made() -> None:
    """An index that does not fit the id would alias another event's: refused up front."""
    with pytest.raises(ValueError, match="out of range"):
        bench_event_id(1, 70_000, 0)
