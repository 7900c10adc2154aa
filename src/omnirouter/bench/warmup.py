"""Warming the broker before anything is measured.

A broker that has just started serves its first minute or so of requests from the JVM's
interpreter and first compilers, at two to five times the CPU it needs once warm. Whatever
phase ran first paid for that on the same two cores: with the pipeline first, a fresh broker
used 0.78 cores at the pipeline's first step against 0.22-0.26 warm at any rate, and a worker
behind it delivered 300 events/s against 360-440 behind a warm one (quick runs, 2026-11-27).
The bench now moves traffic through a pass-through of its own first, window after window, until
the broker's CPU per event stops falling, and records every window in the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from omnirouter.bench.stats import cpu_per_event

__all__ = [
    "SETTLED_SPAN",
    "WARM_UP_HOPS",
    "WARM_UP_MAX_WINDOWS",
    "WARM_UP_RATE",
    "WARM_UP_TOLERANCE",
    "WARM_UP_WINDOW_S",
    "broker_ms_per_event",
    "settled",
    "warm_up",
]

WARM_UP_HOPS = ("bench.warmup.in", "bench.warmup.mid", "bench.warmup.out")
"""Topic keys the warm-up's pass-through moves records across: its own, so nothing it leaves
behind (and no event id it used) can reach the baseline's topics or consumer group."""

WARM_UP_TOLERANCE = 0.10
SETTLED_SPAN = 3
"""The broker is warm once the mean cost of the last ``SETTLED_SPAN`` windows is no more than
``WARM_UP_TOLERANCE`` below the mean of the ``SETTLED_SPAN`` windows before them."""

WARM_UP_RATE = 2_000.0
"""Events/s offered while warming, and at most a fifth of the load generator's own speed."""
WARM_UP_WINDOW_S = 6.0
"""Measured seconds of each window (times ``--scale``), after the step's own unmeasured start."""
WARM_UP_MAX_WINDOWS = 16
"""A broker still not settled after this many windows is measured as it is, and the result
says so."""

# Without the broker's CPU (a stack from the environment, whose process the bench cannot see),
# the warm-up cannot tell when it is done: it runs this many windows and claims nothing.
_BLIND_WINDOWS = 2


def broker_ms_per_event(step: dict[str, Any]) -> float | None:
    """The broker's CPU per delivered event in one measured step, in ms (None: not sampled)."""
    return cpu_per_event(step.get("processes") or {}, step.get("delivered") or 0).get("kafka")


def settled(
    costs: Sequence[float], tolerance: float = WARM_UP_TOLERANCE, span: int = SETTLED_SPAN
) -> bool:
    """Whether the cost has stopped falling: the mean of the last ``span`` windows is at most
    ``tolerance`` below the mean of the ``span`` windows before them.

    Neighbouring windows are not enough: a window's cost varies by about a tenth either way,
    and a fresh broker's first two windows can be as close as any later two (measured at
    2,000 events/s: 0.59, 0.56, 0.34, 0.34, 0.29, 0.26, 0.31, then 0.24-0.26 ms per event).
    """
    if len(costs) < 2 * span:
        return False
    last = sum(costs[-span:]) / span
    before = sum(costs[-2 * span : -span]) / span
    return last >= (1.0 - tolerance) * before


async def warm_up(
    step: Callable[[str, float, float], Awaitable[dict[str, Any]]],
    *,
    rate: float,
    window_s: float,
    max_windows: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Offer ``rate`` in windows of ``window_s`` (each measured by ``step``) until the broker's
    CPU per event settles, for at most ``max_windows`` windows.

    A window the pass-through could not carry ends the warm-up at once: more of them would
    only pile up a backlog (and each wait for it to drain).
    """
    windows: list[dict[str, Any]] = []
    costs: list[float] = []
    done = False
    stopped: str | None = None
    for number in range(1, max_windows + 1):
        entry = await step(f"window {number}", rate, window_s)
        cost = broker_ms_per_event(entry)
        if cost is not None:
            progress(f"broker warm-up window {number}: {cost:.3f} ms of broker CPU per event")
            costs.append(cost)
        windows.append(
            {
                "offered": entry["offered"],
                "delivered": entry["delivered"],
                "sustainable": entry["sustainable"],
                "reason": entry["reason"],
                "broker_ms_per_event": cost,
                "processes": entry["processes"],
            }
        )
        if not entry["sustainable"]:
            stopped = f"window {number} was not sustainable ({entry['reason']})"
            break
        done = settled(costs) if costs else number >= _BLIND_WINDOWS
        if done:
            break
    if stopped is not None:
        outcome = f"stopped: {stopped}"
    elif not costs:
        outcome = "the broker's CPU is not visible (a stack from the environment)"
    else:
        outcome = f"broker {costs[0]:.3f} → {costs[-1]:.3f} ms of CPU per event" + (
            "" if done else ", not settled: measuring anyway"
        )
    progress(f"broker warm-up: {len(windows)} windows at {rate:,.0f}/s, {outcome}")
    return {
        "rate": rate,
        "window_s": window_s,
        "settled": bool(costs) and done,  # never after a stop: done is still False then
        "stopped": stopped,
        "windows": windows,
    }
