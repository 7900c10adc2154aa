"""The serve process's sampling loops behind /ops: consumer lag, and everyone's metrics.

Two loops, each every ``ops.lag_sample_interval_s``, so a slow Kafka never stalls throughput:

- lag: :class:`~omnirouter.ops.lag.LagMonitor` samples the consumer groups (blocking, so on a
  thread of its own) and keeps its report;
- metrics: the serve process's own registry, the routing state in Redis and the worker's
  ``/metrics`` (scraped over HTTP and parsed with ``prometheus_client.parser``) make one
  snapshot; the last minute of snapshots gives rates and percentiles, and each tick adds a
  point to the time series the dashboard draws.

Stopping never waits long for a lag round: the round is a read-only set of kafka-python admin
calls whose end nothing bounds as a whole (each request has a timeout, a round has several, and
some per group or per topic), and a stopping ``serve`` once waited more than 60 s for one. The
monitor is closed on the lag thread once the round in flight ends; :meth:`OpsSampler.stop` waits
for that a few seconds at most, then returns and leaves the thread (a daemon) to finish alone.

The worker's metrics are read from this host (``127.0.0.1:{ops.worker_metrics_port}``): with
several worker hosts, Prometheus (deploy/prometheus) is the fleet-wide view.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from omnirouter.logs import get_logger
from omnirouter.ops.lag import LagCollector, LagMonitor
from omnirouter.ops.metrics import REGISTRY
from omnirouter.ops.queues import QueueStateCollector
from omnirouter.ops.summary import (
    MetricsSnapshot,
    Window,
    agents,
    dead_letters,
    deliveries,
    history_point,
    lag_point,
    latency,
    merge,
    queues,
    snapshot_from_families,
    throughput,
)
from omnirouter.settings import Settings

log = get_logger(__name__)

WINDOW_S = 60.0
HISTORY_S = 15 * 60.0
#: How long :meth:`OpsSampler.stop` waits for the lag round in flight and the monitor's close.
STOP_WAIT_S = 3.0

T = TypeVar("T")


def worker_metrics_url(settings: Settings) -> str | None:
    """Where this host's worker serves /metrics (None when its port is chosen at start)."""
    port = settings.ops.worker_metrics_port
    if port == 0:
        return None
    host = settings.api.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reading a bind address, not binding
        host = "127.0.0.1"
    return f"http://{host}:{port}/metrics"


class _LagThread:
    """One daemon thread running the lag monitor's blocking calls, one at a time, in order.

    Not a ``ThreadPoolExecutor``: its threads are joined when the interpreter exits, so a lag
    round stuck on an unanswered request would still hold up a stopping process there. Calls
    queued behind the one running never overlap it, so the monitor is closed on this thread
    after its round, never from another thread while kafka-python's client is in use.
    """

    def __init__(self) -> None:
        """Start the thread; it ends after :meth:`finish` once the calls queued before ran."""
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self._calls = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="omnirouter-lag", daemon=True)
        self.thread.start()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        """Run ``call`` after the calls queued before it; its outcome is the future's."""
        done: Future[T] = Future()
        self._calls.put((call, done))
        return done

    def finish(self) -> None:
        """Let the thread end once the calls already queued have run."""
        self._calls.put(None)

    def _run(self) -> None:
        while (queued := self._calls.get()) is not None:
            call, done = queued
            if not done.set_running_or_notify_cancel():
                continue  # its awaiter gave up before it started: a sample nobody wants
            try:
                result = call()
            except BaseException as exc:  # handed to the awaiter, as an executor would
                done.set_exception(exc)
            else:
                done.set_result(result)


class OpsSampler:
    """Samples lag and metrics in the background; :meth:`summary` is the dashboard's JSON."""

    def __init__(
        self,
        settings: Settings,
        bootstrap_servers: str,
        queue_state: QueueStateCollector,
        *,
        monitor: LagMonitor | None = None,
        stop_wait_s: float = STOP_WAIT_S,
    ) -> None:
        """Sample with ``settings.ops``; ``monitor`` defaults to one on ``bootstrap_servers``;
        :meth:`stop` waits at most ``stop_wait_s`` for the lag thread."""
        ops = settings.ops
        self._stop_wait_s = stop_wait_s
        self._interval_s = ops.lag_sample_interval_s
        # Connects on its first sample, on the lag thread: building it here costs nothing.
        self.monitor = monitor or LagMonitor(
            bootstrap_servers,
            window=ops.lag_window,
            groups=ops.lag_groups,
            security=settings.kafka,
        )
        self.queue_state = queue_state
        self.worker_url = worker_metrics_url(settings)
        #: What /metrics adds to omnirouter's own REGISTRY: queue state, and consumer lag.
        self.registry = CollectorRegistry()
        self.registry.register(queue_state)
        self.registry.register(LagCollector(self.monitor))
        self._lag_thread: _LagThread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        points = int(HISTORY_S / self._interval_s) + 1
        self._snapshots: deque[MetricsSnapshot] = deque(maxlen=int(WINDOW_S / self._interval_s) + 2)
        self._history: deque[dict[str, Any]] = deque(maxlen=points)
        self._lag_history: deque[dict[str, Any]] = deque(maxlen=points)
        self._lag: dict[str, Any] | None = None
        self._last_worker = MetricsSnapshot(0.0)
        self.lag_error: str | None = None
        self.sources: dict[str, str] = {"serve": "ok", "worker": "not sampled yet"}

    async def start(self) -> None:
        """Start both loops (the lag monitor connects on its thread, not here)."""
        self._http = httpx.AsyncClient(timeout=min(5.0, self._interval_s * 2))
        # One thread: samples never overlap, and the monitor closes after the one in flight.
        self._lag_thread = _LagThread()
        self._tasks = [
            asyncio.create_task(self._every_tick(self.sample_lag), name="ops-lag"),
            asyncio.create_task(self._every_tick(self.sample_metrics), name="ops-metrics"),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the monitor and client, waiting at most ``stop_wait_s``
        for a lag sample in flight (the lag thread closes the monitor after it)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._lag_thread is None:
            await asyncio.to_thread(self.monitor.close)
        else:
            lag_thread, self._lag_thread = self._lag_thread, None
            closed = asyncio.wrap_future(lag_thread.submit(self._close_monitor))
            lag_thread.finish()
            # asyncio.wait, not wait_for: giving up must not cancel the close queued behind
            # the sample, or the admin client would never be closed.
            await asyncio.wait({closed}, timeout=self._stop_wait_s)
            if not closed.done():
                log.warning(
                    "lag sample still running at stop; its thread closes the monitor after it",
                    waited_s=self._stop_wait_s,
                )
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _close_monitor(self) -> None:
        try:
            self.monitor.close()
        except Exception:  # stopping goes on; nobody awaits this once stop() gave up
            log.exception("closing the lag monitor failed")

    async def _every_tick(self, sample: Callable[[], Awaitable[None]]) -> None:
        while True:
            started = time.monotonic()
            try:
                await sample()
            except Exception:  # a failed sample is reported on the page; the loop goes on
                log.exception("ops sampling failed", sample=getattr(sample, "__name__", "?"))
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def sample_lag(self) -> None:
        """Take one lag sample (on the lag thread; a broker that does not answer gives a
        report with status ERR, not an exception)."""
        try:
            if self._lag_thread is None:  # not started: sampled by hand
                sampled = await asyncio.to_thread(self.monitor.sample)
            else:
                sampled = await asyncio.wrap_future(self._lag_thread.submit(self.monitor.sample))
        except Exception as exc:
            self.lag_error = f"{type(exc).__name__}: {exc}"[:500]
            raise
        self.lag_error = None
        report = sampled.as_json()
        self._lag = report
        self._lag_history.append(lag_point(float(report.get("sampled_at") or time.time()), report))

    async def _worker_snapshot(self, at: float) -> MetricsSnapshot:
        if self.worker_url is None:
            self.sources["worker"] = "unknown port (ops.worker_metrics_port is 0)"
            return MetricsSnapshot(at)
        client = self._http or httpx.AsyncClient(timeout=5.0)
        try:
            answer = await client.get(self.worker_url)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            self.sources["worker"] = f"unreachable: {self.worker_url}: {type(exc).__name__}"
            # Carried forward: a missed scrape must not look like every counter restarting
            # from zero (and then jumping back up) in the rates.
            return MetricsSnapshot(at, self._last_worker.values)
        finally:
            if client is not self._http:
                await client.aclose()
        self.sources["worker"] = "ok"
        self._last_worker = snapshot_from_families(text_string_to_metric_families(answer.text), at)
        return self._last_worker

    async def sample_metrics(self) -> None:
        """Take one snapshot of every process's metrics and add a point to the history."""
        at = time.time()
        await self.queue_state.refresh()
        self.sources["redis"] = "ok" if self.queue_state.error is None else self.queue_state.error
        own = snapshot_from_families([*REGISTRY.collect(), *self.queue_state.collect()], at)
        self._snapshots.append(merge(at, own, await self._worker_snapshot(at)))
        self._history.append(history_point(self.window()))

    def window(self) -> Window:
        """The snapshots of the last minute."""
        if not self._snapshots:
            return Window(())
        since = self._snapshots[-1].at - WINDOW_S
        return Window([s for s in self._snapshots if s.at >= since])

    def summary(self) -> dict[str, Any]:
        """Everything the dashboard shows, as JSON-ready data."""
        window = self.window()
        return {
            "generated_at": time.time(),
            "sample_interval_s": self._interval_s,
            "window_s": window.seconds,
            "sources": dict(self.sources),
            "lag": self._lag,
            "lag_error": self.lag_error,
            "throughput": throughput(window),
            "latency": latency(window),
            "queues": queues(window),
            "dead_letters": dead_letters(window),
            "agents": agents(window),
            "deliveries": deliveries(window),
            "history": list(self._history),
            "lag_history": list(self._lag_history),
        }
