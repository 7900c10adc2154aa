"""How full a worker asks its fetches to be, from the traffic it is reading: pure, no I/O.

A fetch the broker answers as soon as one record is there costs a busy worker dearly: with
records arriving on some of its ~45 partitions every few milliseconds, each fetch brings a
record or two, and encoding and parsing its ~45 partitions in aiokafka's pure-Python protocol
(plus the hand-over to the event loop) costs more than the records in it. A fetch that waits for
16 KiB (at most 20 ms) brings a few dozen, and a worker at 150 events/s spent a quarter to a
third less CPU per event that way, its latency no worse (it was queueing behind the CPU anyway).
At light traffic the same wait would be pure latency (up to 20 ms per stage) and more polls of an
idle worker, so a worker asks for fuller fetches only while it reads enough records to be busy.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FetchSizing:
    """What a fetch asks the broker for: the least data to answer with, the longest wait."""

    min_bytes: int
    max_wait_ms: int


# A busy worker's sizing and where "busy" starts: the defaults of the pipeline settings
# fetch_min_bytes, fetch_max_wait_ms and fetch_busy_records_per_s. For the pipeline app,
# 200 records a second is about 100 events (each read twice, on its way in and after
# identity), where a worker's CPU stops growing with its load. The threshold is per app.
BUSY_FETCH = FetchSizing(min_bytes=16_384, max_wait_ms=20)
BUSY_FROM_RECORDS_PER_S = 200.0


@dataclass(slots=True)
class FetchSizer:
    """Chooses ``busy`` sizing while a worker reads at least ``busy_from`` records a second
    (averaged over windows of at least ``window_s``, closed by the first fetch after it),
    ``light`` sizing once it reads less than half that.

    The gap between the two thresholds keeps a worker near the boundary from switching at
    every window. ``busy_from`` of 0 keeps fetches ``busy`` always.
    """

    light: FetchSizing
    busy: FetchSizing
    busy_from: float
    window_s: float = 1.0
    _records: int = field(default=0, init=False)
    _since: float | None = field(default=None, init=False)
    _is_busy: bool = field(default=False, init=False)

    @property
    def current(self) -> FetchSizing:
        """The sizing in effect."""
        return self.busy if self._is_busy or self.busy_from <= 0 else self.light

    def after_fetch(self, records: int, now: float) -> FetchSizing | None:
        """Count ``records`` just fetched (at monotonic time ``now``); the new sizing when a
        window closes with the traffic on the other side of its threshold, else None."""
        if self._since is None:
            self._since = now
        self._records += records
        elapsed = now - self._since
        if elapsed < self.window_s or elapsed <= 0:
            return None
        rate = self._records / elapsed
        self._records, self._since = 0, now
        was = self.current
        self._is_busy = rate >= (self.busy_from / 2 if self._is_busy else self.busy_from)
        return None if self.current == was else self.current
