"""Open-loop load: when each event is meant to be sent, and how ids carry that moment (pure).

The generator never waits for the system under test: event ``i`` of a step is *intended* at
``t0 + i / rate`` whatever happened before it, and latency is measured from that intended
moment. A stall anywhere (the generator, Kafka, the worker) therefore shows up as latency of
every event scheduled during it, instead of silently lowering the offered rate (coordinated
omission).

Each event's id names its run, step and index, so the consumer of the output topic can tell
when the event was intended without any shared state with the generator: the output records
carry the id (``cause_event_id`` of a case event, ``event_id`` of a pass-through record).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "BenchId",
    "StepPlan",
    "bench_event_id",
    "due_count",
    "intended_at",
    "parse_bench_id",
]

_MAX_INDEX = (1 << 48) - 1
_MAX_STEP = 0xFFFF


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One fixed-rate step: ``total`` events from ``t0`` (monotonic seconds) at ``rate``/s.

    The first ``warmup_s`` seconds are sent but not measured; the rest is the steady window.
    """

    step: int
    rate: float
    t0: float
    warmup_s: float
    steady_s: float

    @property
    def total(self) -> int:
        """Events in the step (warm-up and steady window)."""
        # Rounded first: a step planned as count / rate seconds must hold count events, and the
        # product can land a hair above the integer (ceil would add one event nobody sends).
        return max(1, math.ceil(round(self.rate * (self.warmup_s + self.steady_s), 6)))

    @property
    def steady_from(self) -> float:
        """Monotonic time the steady window starts."""
        return self.t0 + self.warmup_s

    @property
    def ends_at(self) -> float:
        """Monotonic time the last event is intended."""
        return self.t0 + self.warmup_s + self.steady_s

    def intended(self, index: int) -> float:
        """When event ``index`` of this step is meant to be sent."""
        return intended_at(self.t0, self.rate, index)

    def due(self, now: float) -> int:
        """How many events of this step are due by ``now``."""
        return due_count(now - self.t0, self.rate, self.total)


def intended_at(t0: float, rate: float, index: int) -> float:
    """The intended send time of event ``index`` at a fixed ``rate`` from ``t0``."""
    return t0 + index / rate


def due_count(elapsed_s: float, rate: float, total: int) -> int:
    """Events due ``elapsed_s`` after the start at ``rate`` per second, capped at ``total``.

    Event 0 is due at the start itself; nothing is due before it.
    """
    if elapsed_s < 0:
        return 0
    return min(total, math.floor(elapsed_s * rate) + 1)


@dataclass(frozen=True, slots=True)
class BenchId:
    """What an event id of the benchmark says: run nonce, step and index within the step."""

    nonce: int
    step: int
    index: int


def bench_event_id(nonce: int, step: int, index: int) -> str:
    """A UUID-shaped event id naming run ``nonce``, ``step`` and ``index`` (version nibble 4)."""
    if not 0 <= step <= _MAX_STEP or not 0 <= index <= _MAX_INDEX:
        raise ValueError(f"step {step} or index {index} out of range")
    return f"{nonce & 0xFFFFFFFF:08x}-{step:04x}-4000-8000-{index:012x}"


def parse_bench_id(text: bytes | str, nonce: int) -> BenchId | None:
    """The step and index of an id made by :func:`bench_event_id` for this run, else None.

    Ids of other runs and derived ids (merges, routing) are not ours: None, never an error.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if len(raw) != 36 or raw[8] != "-" or raw[13:24] != "-4000-8000-":
        return None
    try:
        if int(raw[:8], 16) != nonce & 0xFFFFFFFF:
            return None
        return BenchId(nonce, int(raw[9:13], 16), int(raw[24:], 16))
    except ValueError:
        return None
