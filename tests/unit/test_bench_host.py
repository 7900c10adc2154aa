"""The bench's host figures: what an event-loop wake-up costs, and the threads' switches."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from omnirouter.bench.host import WAKE_RATES, wake_cost_us, wake_costs
from omnirouter.bench.processes import CpuWindow, ProcessSampler

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


@linux_only
def test_context_switches_are_counted_over_every_thread_of_the_process() -> None:
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
    assert after[0] - before[0] >= 50
    assert after[1] >= before[1]


@linux_only
def test_a_cpu_window_reports_wake_ups_and_preemptions_a_second() -> None:
    window = CpuWindow({"bench": ProcessSampler(os.getpid())})
    window.open()
    for _ in range(20):
        time.sleep(0.001)
    entry = window.close()["bench"]
    assert entry["wakeups_per_s"] > 0
    assert entry["preemptions_per_s"] >= 0
    assert entry["cpu_cores"] >= 0


def test_a_process_without_proc_entries_has_no_context_switches() -> None:
    """A pid that does not exist (or a host without /proc): None, not zeros."""
    sampler = ProcessSampler.__new__(ProcessSampler)
    sampler.pid = 2**22 + 12345  # above the kernel's pid_max
    sampler._process = None
    assert sampler.context_switches() is None
