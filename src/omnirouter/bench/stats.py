"""Deciding from measurements (pure): percentiles, whether a backlog stayed bounded, and which
rate to offer next while searching for the maximum sustainable one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A catch-up at this share of the offered rate or more kept up with the burst itself.
CATCH_UP_OFFER_BOUND = 0.8

__all__ = [
    "CATCH_UP_OFFER_BOUND",
    "BacklogVerdict",
    "LatencySummary",
    "RateSearch",
    "backlog_verdict",
    "catch_up_entry",
    "rewrote_aof",
    "summarize_latencies",
]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one step's latencies, in milliseconds, over every sample (no binning)."""

    count: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        """For the JSON result."""
        return {
            "count": self.count,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "p999_ms": round(self.p999_ms, 3),
            "max_ms": round(self.max_ms, 3),
        }


def summarize_latencies(samples_s: Sequence[float]) -> LatencySummary:
    """p50/p99/p99.9/max of latencies given in seconds (NaN when there are none)."""
    if len(samples_s) == 0:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan)
    values = sorted(samples_s)
    last = len(values) - 1

    def percentile(q: float) -> float:
        # The "higher" rank: a percentile is a latency some event really had, never an
        # interpolation between two (numpy's method="higher").
        return values[min(last, math.ceil(q / 100.0 * last - 1e-9))] * 1000.0

    return LatencySummary(
        len(values), percentile(50.0), percentile(99.0), percentile(99.9), values[-1] * 1000.0
    )


def _slope(points: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope of ``points`` (change of the second value per unit of the first)."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_b = sum(b for _, b in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (b - mean_b) for t, b in points) / spread


@dataclass(frozen=True, slots=True)
class BacklogVerdict:
    """Whether the backlog stayed bounded over a steady window, and the numbers behind it."""

    bounded: bool
    growth_per_s: float
    final_backlog: int
    reason: str


def backlog_verdict(
    samples: Sequence[tuple[float, int]],
    rate: float,
    *,
    max_growth_share: float = 0.03,
    max_backlog_s: float = 2.0,
) -> BacklogVerdict:
    """Judge a steady window from ``(time_s, backlog)`` samples at offered ``rate``.

    Bounded means the backlog does not keep growing: its least-squares slope stays under
    ``max_growth_share`` of the offered rate (a system that keeps up only drifts by noise), and
    the backlog at the end is under ``max_backlog_s`` seconds of traffic (a backlog that is flat
    but minutes deep is a queue that never drains, not a sustainable rate).
    """
    if len(samples) < 3:
        return BacklogVerdict(False, math.nan, samples[-1][1] if samples else 0, "too few samples")
    final = samples[-1][1]
    if max(t for t, _ in samples) <= min(t for t, _ in samples):
        return BacklogVerdict(False, math.nan, final, "samples span no time")
    slope = _slope(samples)
    if slope > max_growth_share * rate:
        return BacklogVerdict(
            False, slope, final, f"backlog grows {slope:.0f}/s (> {max_growth_share:.0%} of rate)"
        )
    if final > max_backlog_s * rate:
        return BacklogVerdict(
            False, slope, final, f"backlog {final} is over {max_backlog_s:g} s of traffic"
        )
    return BacklogVerdict(True, slope, final, "bounded")


@dataclass
class RateSearch:
    """Finds the highest sustainable rate: ramp up geometrically, then bisect the last gap.

    Feed each step's outcome to :meth:`record`; :meth:`next_rate` says what to offer next, or
    None when the search is over. Rates are rounded to ``granularity``.
    """

    start: float
    growth: float = 1.5
    refinements: int = 2
    ceiling: float = math.inf
    floor: float = 50.0
    granularity: float = 50.0
    best_ok: float | None = None
    lowest_failed: float | None = None
    history: list[tuple[float, bool]] = field(default_factory=list)
    _refined: int = 0

    def record(self, rate: float, sustainable: bool) -> None:
        """What offering ``rate`` showed."""
        if self.best_ok is not None and self.lowest_failed is not None:
            self._refined += 1
        self.history.append((rate, sustainable))
        if not sustainable:
            self.lowest_failed = min(self.lowest_failed or math.inf, rate)
        # A rate only counts as sustainable below every rate that failed: when a lower rate
        # fails after a higher one held (noise), the failure is trusted.
        limit = self.lowest_failed if self.lowest_failed is not None else math.inf
        self.best_ok = max((r for r, ok in self.history if ok and r < limit), default=None)

    def _round(self, rate: float) -> float:
        return max(self.granularity, round(rate / self.granularity) * self.granularity)

    def next_rate(self) -> float | None:
        """The next rate to offer, or None when the answer is known well enough."""
        tried = {r for r, _ in self.history}
        if not self.history:
            return self._round(min(self.start, self.ceiling))
        if self.lowest_failed is None:
            assert self.best_ok is not None
            if self.best_ok >= self.ceiling:
                return None
            return self._round(min(self.best_ok * self.growth, self.ceiling))
        if self.best_ok is None:
            lower = self._round(self.lowest_failed / self.growth)
            if lower < self.floor or lower in tried:
                return None
            return lower
        if self._refined >= self.refinements:
            return None
        middle = self._round(math.sqrt(self.best_ok * self.lowest_failed))
        if middle in tried or middle <= self.best_ok or middle >= self.lowest_failed:
            return None
        return middle


def cpu_per_event(processes: dict[str, dict[str, float]], events_per_s: float) -> dict[str, float]:
    """Each process's CPU in ms per event, from its cores while ``events_per_s`` came out."""
    return _per_event(processes, "cpu_cores", events_per_s, scale=1000.0, digits=4)


def wakeups_per_event(
    processes: dict[str, dict[str, float]], events_per_s: float
) -> dict[str, float]:
    """Each process's wake-ups (its threads' voluntary context switches) per event, from its
    wake-ups a second while ``events_per_s`` came out. On a host where waking costs a process
    much CPU, this is what makes an event dearer at low load than in a batch."""
    return _per_event(processes, "wakeups_per_s", events_per_s, scale=1.0, digits=2)


def _per_event(
    processes: dict[str, dict[str, float]],
    per_second: str,
    events_per_s: float,
    *,
    scale: float,
    digits: int,
) -> dict[str, float]:
    """Each process's ``per_second`` figure per event (times ``scale``), for those that have
    it; nothing when no event came out."""
    if events_per_s <= 0:
        return {}
    return {
        name: round(scale * usage[per_second] / events_per_s, digits)
        for name, usage in processes.items()
        if usage.get(per_second) is not None
    }


def catch_up_entry(
    *,
    offered: int,
    received: int,
    elapsed_s: float,
    processes: dict[str, dict[str, float]],
    rate: float,
) -> dict[str, Any]:
    """A backlog's catch-up as the result records it: events worked off per second from the
    first event offered to the last one out (``elapsed_s``), and each process's CPU per event
    over that time (``processes``: cores and RSS, as the CPU window reports them).

    Events that never came out are ``missing`` and do not count towards the rate. A rate near
    the offered ``rate`` says only that the system kept up with the burst itself: it could
    not show more (``limited_by_offer``).
    """
    seconds = max(elapsed_s, 1e-9)
    events_per_s = received / seconds
    per_event = cpu_per_event(processes, events_per_s)
    return {
        "events": offered,
        "received": received,
        "missing": max(0, offered - received),
        "drained": received >= offered,
        "rate_offered": rate,
        "limited_by_offer": events_per_s >= CATCH_UP_OFFER_BOUND * rate,
        "elapsed_s": round(elapsed_s, 2),
        "events_per_s": round(events_per_s, 1),
        "cpu_ms_per_event": per_event,
        "wakeups_per_event": wakeups_per_event(processes, events_per_s),
        "processes": processes,
    }


def rewrote_aof(step: Mapping[str, Any]) -> bool:
    """True when Redis began rewriting its append-only file in the step's window or its warm-up
    (whose backlog the window then works off), or was rewriting at the window's start or end."""
    redis_entry = step.get("redis") or {}
    return bool(
        redis_entry.get("aof_rewrites")
        or redis_entry.get("aof_rewrites_in_warm_up")
        or redis_entry.get("aof_rewrite_under_way")
    )
