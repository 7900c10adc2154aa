"""The bench's host figures: what an event-loop wake-up and the same Python after other code or
a sleep cost, and the threads' switches."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from omnirouter.bench import host
from omnirouter.bench.host import (
    LOCALITY_MODES,
    WAKE_RATES,
    locality_costs,
    routine_cost_us,
    wake_cost_us,
    wake_costs,
)
from omnirouter.bench.processes import (
    CpuWindow,
    ProcessSampler,
    ThreadSwitches,
    switches_between,
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="context switches come from /proc"
)


async def test_a_wake_up_costs_some_cpu_and_each_rate_is_reported() -> None:
    """Positive CPU per wake-up (the loop really slept and woke), one figure per rate."""
    assert await wake_cost_us(1000.0, 20) > 0
    costs = await wake_costs(seconds_each=0.05)
    assert list(costs) == [f"{rate:g}/s" for rate in WAKE_RATES]
    assert all(us > 0 for us in costs.values())


@pytest.mark.parametrize(("rate", "wakes"), [(0.0, 10), (-1.0, 10), (50.0, 0)])
async def test_a_wake_cost_needs_a_positive_rate_and_count(rate: float, wakes: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        await wake_cost_us(rate, wakes)


def test_the_routine_is_timed_in_every_mode_and_each_mode_is_reported() -> None:
    """Positive CPU per run in each mode (the routine ran and was timed), one figure per mode,
    in the order the modes are listed."""
    for mode in LOCALITY_MODES:
        assert routine_cost_us(mode, 3) > 0
    costs = locality_costs(seconds=0.05)
    assert list(costs) == list(LOCALITY_MODES)
    assert all(us > 0 for us in costs.values())


def test_only_the_routine_is_timed_not_what_runs_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What runs before each run (here 20 ms of CPU, spent before the routine's clock starts)
    is not in the figure: it is the routine's own cost, not a wake-up's or the other code's."""

    def busy_20_ms() -> None:
        until = time.thread_time() + 0.02
        while time.thread_time() < until:
            pass

    monkeypatch.setattr(host, "_other_code", busy_20_ms)
    assert routine_cost_us("after other code", 5) < 20_000


def test_the_code_run_between_two_runs_of_the_routine_moves_on_through_its_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each run of the other code reads the next slice of its data, round the whole of it, so
    that the caches see data not touched lately rather than the same few kilobytes."""
    seen: list[object] = []
    monkeypatch.setattr(host, "_OTHER_STARTS", iter(range(0, 200, 40)))
    monkeypatch.setattr(host, "_HEX", _Recording(seen))
    routine_cost_us("after other code", 3)
    expected = [text for _, text, _ in host._OTHER_DATA[0:120]]
    assert seen == expected


class _Recording:
    """Stands in for the compiled pattern: records the text it is given."""

    def __init__(self, seen: list[object]) -> None:
        self.seen = seen

    def sub(self, replacement: str, text: str) -> str:
        self.seen.append(text)
        return text


@pytest.mark.parametrize(("mode", "repeats"), [("sideways", 3), (LOCALITY_MODES[0], 0)])
def test_a_routine_cost_needs_a_known_mode_and_a_positive_count(mode: str, repeats: int) -> None:
    with pytest.raises(ValueError, match=r"unknown mode|positive"):
        routine_cost_us(mode, repeats)


def test_switches_between_readings_count_each_thread_once() -> None:
    """A thread in both readings counts its difference, a new one all of its own, an ended one
    nothing (never a negative total), a reused thread id as the new thread it is."""
    before: ThreadSwitches = {1: (100, 10), 2: (50, 5), 3: (900, 90)}
    after: ThreadSwitches = {
        1: (130, 12),  # ran on: +30, +2
        2: (7, 1),  # id 2 ended and was given to a new thread: +7, +1
        4: (20, 3),  # started since: +20, +3
    }  # thread 3 ended: its 900 are not taken off the others
    assert switches_between(before, after) == (57, 6)
    assert switches_between(after, after) == (0, 0)
    assert switches_between({}, after) == (157, 16)


@linux_only
def test_context_switches_are_read_for_every_thread_of_the_process() -> None:
    """A helper thread's sleeps count, not only the main thread's (psutil reports those
    alone): 50 sleeps in the helper raise the process's voluntary switches by at least 50."""
    sampler = ProcessSampler(os.getpid())
    slept = threading.Event()
    leave = threading.Event()

    def sleeper() -> None:
        for _ in range(50):
            time.sleep(0.001)  # each sleep puts the thread to sleep: one voluntary switch
        slept.set()
        leave.wait(timeout=30)

    before = sampler.context_switches()
    assert before is not None
    helper = threading.Thread(target=sleeper)
    helper.start()
    try:
        assert slept.wait(timeout=30)
        after = sampler.context_switches()
    finally:
        leave.set()
        helper.join(timeout=30)
    assert after is not None
    assert helper.native_id in after
    assert after[helper.native_id][0] >= 50
    assert switches_between(before, after)[0] >= 50


@linux_only
def test_a_cpu_window_reports_wake_ups_a_second_and_preemptions() -> None:
    window = CpuWindow({"bench": ProcessSampler(os.getpid())})
    window.open()
    for _ in range(20):
        time.sleep(0.001)
    entry = window.close()["bench"]
    assert entry["wakeups_per_s"] > 0
    assert "preemptions_per_s" in entry


class _NoProc(ProcessSampler):
    """A host whose /proc tells no context switches."""

    def context_switches(self) -> ThreadSwitches | None:
        return None


def test_without_context_switches_a_cpu_window_reports_cpu_and_memory_only() -> None:
    window = CpuWindow({"bench": _NoProc(os.getpid())})
    window.open()
    entry = window.close()["bench"]
    assert set(entry) == {"cpu_cores", "system_cores", "rss_mib"}


@linux_only
def test_a_cpu_window_tells_the_kernels_part_of_the_cpu() -> None:
    """Reading /dev/zero is nearly all kernel work (zeroing and copying), summing numbers all
    user work: each shows as such in the window's system cores."""
    chunk = 1 << 20

    def busy(work: Callable[[], object], cpu_s: float = 0.3) -> dict[str, float]:
        window = CpuWindow({"bench": ProcessSampler(os.getpid())})
        window.open()
        until = time.process_time() + cpu_s
        while time.process_time() < until:
            work()
        return window.close()["bench"]

    with open("/dev/zero", "rb", buffering=0) as zeros:
        reading = busy(lambda: zeros.read(chunk))
    summing = busy(lambda: sum(range(10_000)))
    assert reading["system_cores"] > 0.5 * reading["cpu_cores"]
    assert summing["system_cores"] < 0.5 * summing["cpu_cores"]


@linux_only
def test_a_process_that_ended_has_no_context_switches() -> None:
    sampler = ProcessSampler(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    sampler.pid = child.pid  # reaped: its /proc entry is gone
    assert sampler.context_switches() is None
