"""Stopping the /ops sampler never waits on a lag round for long: a CI teardown once waited more
than 60 s for `serve` to stop while the lag monitor's round was still reading the cluster."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from omnirouter.ops.lag import LagReport
from omnirouter.ops.sampler import OpsSampler
from omnirouter.settings import OpsSettings, Settings
from support.waiting import eventually_async

# Generous: the sampler gives up on the round after its own stop_wait_s; this only turns a
# stop() that waits for the stuck round into a failure rather than a hung test.
HANG_S = 30.0


class StuckLagMonitor:
    """A lag monitor whose round blocks until the test releases it, as a round stuck on a
    request the broker never answers does. It records what ran, in order, on which thread."""

    def __init__(self) -> None:
        self.in_round = threading.Event()
        self.released = threading.Event()
        self.calls: list[tuple[str, str]] = []
        self.thread: threading.Thread | None = None
        self._report = LagReport()

    def sample(self, now: float | None = None) -> LagReport:
        self.thread = threading.current_thread()
        self.calls.append(("sample", self.thread.name))
        self.in_round.set()
        self.released.wait(timeout=HANG_S * 2)
        self._report = LagReport(sampled_at=1000.0)
        self.calls.append(("sample returned", threading.current_thread().name))
        return self._report

    def report(self) -> LagReport:
        return self._report

    def close(self) -> None:
        self.calls.append(("close", threading.current_thread().name))


class NoQueues(Collector):
    """The routing state without Redis: no queues, never an error."""

    error: str | None = None

    async def refresh(self) -> None:
        return None

    def collect(self) -> Iterable[Metric]:
        return []

    def describe(self) -> Iterable[Metric]:
        return []


def sampler(monitor: StuckLagMonitor, *, stop_wait_s: float = 0.2) -> OpsSampler:
    settings = Settings(ops=OpsSettings(worker_metrics_port=0, lag_sample_interval_s=0.05))
    return OpsSampler(
        settings,
        "127.0.0.1:9",
        NoQueues(),  # type: ignore[arg-type]
        monitor=monitor,  # type: ignore[arg-type]
        stop_wait_s=stop_wait_s,
    )


async def thread_ended(monitor: StuckLagMonitor) -> bool:
    return monitor.thread is not None and not monitor.thread.is_alive()


async def lag_loop_stopped() -> bool:
    return not any(t.get_name() == "ops-lag" for t in asyncio.all_tasks())


async def test_stop_returns_while_a_lag_round_is_stuck_and_the_monitor_closes_after_it() -> None:
    monitor = StuckLagMonitor()
    ops = sampler(monitor)
    await ops.start()
    try:
        await asyncio.to_thread(monitor.in_round.wait, HANG_S)
        assert monitor.in_round.is_set(), "the lag loop never sampled"

        await asyncio.wait_for(ops.stop(), timeout=HANG_S)

        # stop() returned with the round still stuck, and did not close the monitor under it.
        assert not monitor.released.is_set()
        assert [call for call, _ in monitor.calls] == ["sample"]
    finally:
        monitor.released.set()

    async def closed() -> bool:
        return len(monitor.calls) == 3

    # Once the round ends, the lag thread closes the monitor (after it, on the same thread:
    # kafka-python's client is never closed from another thread while in use) and ends.
    await eventually_async(closed, timeout_s=HANG_S, what="the monitor to be closed")
    assert monitor.calls == [
        ("sample", "omnirouter-lag"),
        ("sample returned", "omnirouter-lag"),
        ("close", "omnirouter-lag"),
    ]
    await eventually_async(
        lambda: thread_ended(monitor), timeout_s=HANG_S, what="the lag thread to end"
    )


async def test_a_round_that_ends_while_stopping_is_closed_before_stop_returns() -> None:
    """The usual case: the round in flight ends within stop's wait, so stop() returns with the
    monitor closed and no lag thread left behind."""
    monitor = StuckLagMonitor()
    ops = sampler(monitor, stop_wait_s=HANG_S)
    await ops.start()
    await asyncio.to_thread(monitor.in_round.wait, HANG_S)
    stopping = asyncio.create_task(ops.stop())
    # Released once stop() is past cancelling the loops, i.e. waiting for the round.
    await eventually_async(lag_loop_stopped, timeout_s=HANG_S, what="the lag loop to stop")
    monitor.released.set()
    await asyncio.wait_for(stopping, timeout=HANG_S)

    assert [call for call, _ in monitor.calls] == ["sample", "sample returned", "close"]
    await eventually_async(
        lambda: thread_ended(monitor), timeout_s=HANG_S, what="the lag thread to end"
    )


async def test_stop_without_start_closes_the_monitor() -> None:
    """`ops_router(sample=False)` never starts the loops; its lifespan still stops them."""
    monitor = StuckLagMonitor()
    await asyncio.wait_for(sampler(monitor).stop(), timeout=HANG_S)
    assert [call for call, _ in monitor.calls] == ["close"]
