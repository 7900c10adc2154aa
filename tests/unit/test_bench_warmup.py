"""The broker's warm-up before the bench measures: when it is done, and what it records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from omnirouter.bench.warmup import broker_ms_per_event, settled, warm_up


def _step(delivered: float, broker_cores: float | None) -> dict[str, Any]:
    processes: dict[str, Any] = {"baseline": {"cpu_cores": 0.4, "rss_mib": 80.0}}
    if broker_cores is not None:
        processes["kafka"] = {"cpu_cores": broker_cores, "rss_mib": 500.0}
    return {"offered": 2000.0, "delivered": delivered, "processes": processes}


class _ScriptedSteps:
    """Stands in for KafkaPhase.step: hands out one prepared window per call."""

    def __init__(self, windows: list[dict[str, Any]]) -> None:
        self._windows: Iterator[dict[str, Any]] = iter(windows)
        self.calls: list[tuple[str, float, float]] = []

    async def __call__(self, label: str, rate: float, steady_s: float) -> dict[str, Any]:
        self.calls.append((label, rate, steady_s))
        return next(self._windows)


def test_the_cost_is_the_brokers_cpu_per_delivered_event_in_ms() -> None:
    assert broker_ms_per_event(_step(2000, 0.5)) == pytest.approx(0.25)
    assert broker_ms_per_event(_step(2000, None)) is None  # a broker the bench cannot see
    assert broker_ms_per_event(_step(0, 0.5)) is None  # nothing came out: no cost per event


def test_two_close_windows_are_not_enough_to_call_a_fresh_broker_warm() -> None:
    """As measured on a fresh broker: its first two windows were within a tenth of each other."""
    assert not settled([0.593, 0.558])
    assert not settled([0.593, 0.558, 0.344])


def test_three_windows_within_a_tenth_of_their_median_are_the_warm_state() -> None:
    assert settled([0.593, 0.558, 0.344, 0.336, 0.285, 0.264, 0.306])
    assert not settled([0.344, 0.336, 0.285, 0.264])  # 0.336 is 27 % above 0.264's median
    assert settled([0.30, 0.32, 0.28])
    assert not settled([0.30, 0.34, 0.27])


async def test_the_warm_up_stops_at_the_first_settled_window_and_records_each() -> None:
    costs = [0.6, 0.55, 0.35, 0.34, 0.29, 0.27, 0.3, 0.25, 0.25]
    steps = _ScriptedSteps([_step(2000, 2 * cost) for cost in costs])
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=16, progress=messages.append)

    assert len(steps.calls) == 7  # 0.29, 0.27, 0.3 are the first three within a tenth
    assert steps.calls[0] == ("window 1", 2000, 6.0)
    assert record["settled"] is True
    assert [w["broker_ms_per_event"] for w in record["windows"]] == pytest.approx(costs[:7])
    assert "0.600 → 0.300 ms" in messages[-1]


async def test_a_broker_that_never_settles_is_measured_anyway_and_the_result_says_so() -> None:
    costs = [0.6, 0.5, 0.4, 0.3]
    steps = _ScriptedSteps([_step(2000, 2 * cost) for cost in costs])
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=4, progress=messages.append)

    assert len(record["windows"]) == 4
    assert record["settled"] is False
    assert "not settled" in messages[-1]


async def test_without_the_brokers_cpu_two_windows_are_run_and_nothing_is_claimed() -> None:
    steps = _ScriptedSteps([_step(2000, None) for _ in range(5)])
    messages: list[str] = []

    record = await warm_up(steps, rate=2000, window_s=6.0, max_windows=16, progress=messages.append)

    assert len(steps.calls) == 2
    assert record["settled"] is False
    assert "not visible" in messages[-1]
