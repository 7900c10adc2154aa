"""The bench's host figures: what an event-loop wake-up and the same Python after other code or
a sleep cost, and the threads' switches."""

from __future__ import annotations

import contextlib
import itertools
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


def test_the_routine_is_timed_in_every_mode_and_each_mode_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A figure per mode, in the order the modes are listed, each of a routine that ran."""
    monkeypatch.setattr(host, "_SLEEP_S", 0.001)
    for mode in LOCALITY_MODES:
        assert routine_cost_us(mode, 3) > 0
    costs = locality_costs(seconds=0.05)
    assert list(costs) == list(LOCALITY_MODES)
    assert all(us > 0 for us in costs.values())


class _FakeClock:
    """This thread's CPU clock, moved only by what the test says costs CPU."""

    def __init__(self) -> None:
        self.now = 0.0

    def thread_time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += 1.0  # a wake-up's CPU, were it timed

    def spend(self, seconds: float) -> Callable[[], None]:
        def run() -> None:
            self.now += seconds

        return run


@pytest.mark.parametrize("mode", LOCALITY_MODES)
def test_only_the_routine_is_timed_not_what_runs_before_it(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The routine costs 25 µs on the fake clock, the other code and a sleep's wake-up a
    second each: the figure is the routine's 25 µs in every mode."""
    clock = _FakeClock()
    monkeypatch.setattr(host, "time", clock)
    monkeypatch.setattr(host, "_routine", clock.spend(25e-6))
    monkeypatch.setattr(host, "_other_code", clock.spend(1.0))
    assert routine_cost_us(mode, 4) == pytest.approx(25.0)


def test_the_other_code_reads_the_next_slice_of_its_data_each_time_round_all_of_it() -> None:
    """One round of slice starts covers every item once, then starts over."""
    starts = host.slice_starts(100, 40)
    assert [next(starts) for _ in range(4)] == [0, 40, 80, 0]
    starts = host.slice_starts(host._OTHER_ITEMS, host._OTHER_SLICE)
    read = [
        index
        for start in itertools.islice(starts, host._OTHER_ITEMS // host._OTHER_SLICE)
        for index in range(start, start + host._OTHER_SLICE)
    ]
    assert read == list(range(host._OTHER_ITEMS))
    assert next(starts) == 0


def test_each_run_of_the_other_code_reads_the_slice_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(host, "_other_starts", iter([80, 0]))
    monkeypatch.setattr(host, "_HEX", _Recording(seen))
    host._other_code()
    host._other_code()
    data = host._other_data()
    slice_size = host._OTHER_SLICE
    expected = [text for _, text, _ in data[80 : 80 + slice_size] + data[0:slice_size]]
    assert seen == expected


class _Recording:
    """Stands in for the compiled pattern: records the text it is given."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def sub(self, replacement: str, text: str) -> str:
        self.seen.append(text)
        return text


def test_a_routine_cost_needs_a_known_mode() -> None:
    with pytest.raises(ValueError, match="unknown mode 'sideways'"):
        routine_cost_us("sideways", 3)


def test_a_routine_cost_needs_a_positive_count() -> None:
    with pytest.raises(ValueError, match="repeats must be positive"):
        routine_cost_us(LOCALITY_MODES[0], 0)


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


# A child that, once told to go, spends 0.3 s of CPU on one kind of work, says so, and stays
# alive (so its figures can still be read) until its stdin closes.
_BUSY_CHILD = """
import sys, time
work = sys.argv[1]
zeros = open("/dev/zero", "rb", buffering=0)
buffer = bytearray(1 << 20)
print("ready", flush=True)
sys.stdin.readline()
until = time.process_time() + 0.3
while time.process_time() < until:
    if work == "reading":
        zeros.readinto(buffer)
    else:
        sum(range(10_000))
print("done", flush=True)
sys.stdin.read()
"""


def _busy_child(work: str) -> dict[str, float]:
    """The CPU window over a child process doing ``work`` and nothing else.

    A child of its own, not this process: a pytest worker may have threads of its own or of
    earlier tests (clients' I/O threads) whose CPU would colour the split.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _BUSY_CHILD, work],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        window = CpuWindow({"child": ProcessSampler(child.pid)})
        window.open()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        return window.close()["child"]
    finally:
        # A child that died early leaves "go" unsent in the pipe: closing it raises again.
        with contextlib.suppress(BrokenPipeError):
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stdout.close()


@linux_only
def test_a_cpu_window_tells_the_kernels_part_of_the_cpu() -> None:
    """Reading /dev/zero is nearly all kernel work (zeroing and copying), summing numbers all
    user work: each shows as such in the window's system cores."""
    reading = _busy_child("reading")
    summing = _busy_child("summing")
    assert reading["system_cores"] > 0.5 * reading["cpu_cores"]
    assert summing["system_cores"] < 0.5 * summing["cpu_cores"]


@linux_only
def test_a_process_that_ended_has_no_context_switches() -> None:
    sampler = ProcessSampler(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    sampler.pid = child.pid  # reaped: its /proc entry is gone
    assert sampler.context_switches() is None
