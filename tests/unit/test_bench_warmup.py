"""The broker's warm-up before the bench measures: when it is done, and what it records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from omnirouter.bench.warmup import broker_ms_per_event, settled, warm_up


def _step(
    delivered: float, broker_cores: float | None, *, sustainable: bool = True
) -> dict[str, Any]:
    processes: dict[str, Any] = {"baseline": {"cpu_cores": 0.4, "rss_mib": 80.0}}
    if broker_cores is not None:
        processes["kafka"] = {"cpu_cores": broker_cores, "rss_mib": 500.0}
    reason = "bounded" if sustainable else "backlog grows 300/s (> 3% of rate)"
    return {
        "offered": 2000.0,
        "delivered": delivered,
        "sustainable": sustainable,
        "reason": reason,
        "processes": processes,
    }


class _ScriptedSteps:
    """Stands in for KafkaPhase.step: hands out one prepared window per call."""

    def __init__(self, windows: list[dict[str, Any]]) -> None:
        self._windows: Iterator[dict[str, Any]] = iter(windows)
        self.calls: list[tuple[str, float, float]] = []

    async def __call__(self, label: str, rate: float, steady_s: float) -> dict[str, Any]:
        self.calls.append((label, rate, steady_s))
        return next(self._windows)


def _costing(*costs: float | None) -> _ScriptedSteps:
    """Windows of 2,000 events/s whose broker CPU per event is each of ``costs`` (ms)."""
    return _ScriptedSteps([_step(2000, None if c is None else 2 * c) for c in costs])


# A fresh broker at 2,000 events/s, window after window (ms of its CPU per event).
MEASURED = [0.593, 0.558, 0.344, 0.336, 0.285, 0.264, 0.306, 0.255, 0.256, 0.237, 0.258]


def test_the_cost_is_the_brokers_cpu_per_delivered_event_in_ms() -> None:
    assert broker_ms_per_event(_step(2000, 0.5)) == pytest.approx(0.25)
    assert broker_ms_per_event(_step(2000, None)) is None  # a broker the bench cannot see
    assert broker_ms_per_event(_step(0, 0.5)) is None  # nothing came out: no cost per event


def test_close_neighbouring_windows_do_not_make_a_fresh_broker_warm() -> None:
    """Its first two windows were within a tenth of each other, and so were windows 3 and 4."""
    assert not settled(MEASURED[:2])
    assert not settled(MEASURED[:4])


def test_warm_is_when_three_windows_fall_less_than_a_tenth_below_the_three_before() -> None:
    assert next(n for n in range(1, len(MEASURED) + 1) if settled(MEASURED[:n])) == 9
    assert not settled([0.40, 0.37, 0.34, 0.31, 0.29, 0.27])  # a steady fall is not warm
    assert settled([0.30, 0.28, 0.31, 0.29, 0.27, 0.30])


async def test_the_warm_up_stops_at_the_first_settled_window_and_records_each() -> None:
    steps = _costing(*MEASURED)
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=16, progress=messages.append)

    assert len(steps.calls) == 9
    assert steps.calls[0] == ("window 1", 2000, 6.0)
    assert record["settled"] is True
    assert [w["broker_ms_per_event"] for w in record["windows"]] == pytest.approx(MEASURED[:9])
    assert "0.593 → 0.256 ms" in messages[-1]


async def test_a_broker_that_never_settles_is_measured_anyway_and_the_result_says_so() -> None:
    steps = _costing(0.6, 0.5, 0.4, 0.3)
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=4, progress=messages.append)

    assert len(record["windows"]) == 4
    assert record["settled"] is False
    assert "not settled" in messages[-1]


async def test_a_window_without_a_cost_neither_ends_nor_settles_a_warm_up_under_way() -> None:
    """A window whose events all came out late (or whose broker sample dropped) has no cost:
    it is no sign of a warm broker."""
    steps = _costing(0.6, None, 0.5)
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=3, progress=messages.append)

    assert len(steps.calls) == 3
    assert record["settled"] is False


async def test_a_window_the_pass_through_could_not_carry_ends_the_warm_up_at_once() -> None:
    """More windows would only pile up a backlog, each waiting for it to drain."""
    steps = _ScriptedSteps([_step(2000, 1.2), _step(900, 1.0, sustainable=False), _step(2000, 0.5)])
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=16, progress=messages.append)

    assert len(steps.calls) == 2
    assert record["settled"] is False
    assert record["stopped"] == "window 2 was not sustainable (backlog grows 300/s (> 3% of rate))"
    assert record["windows"][1]["sustainable"] is False
    assert "stopped" in messages[-1]


async def test_without_the_brokers_cpu_two_windows_are_run_and_nothing_is_claimed() -> None:
    steps = _costing(None, None, None, None, None)
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=16, progress=messages.append)

    assert len(steps.calls) == 2
    assert record["settled"] is False
    assert "not visible" in messages[-1]
