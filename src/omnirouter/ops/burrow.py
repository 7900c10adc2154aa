"""Consumer status without thresholds: Burrow's evaluation rules over a sliding window.

LinkedIn's Burrow judges a consumer by how its committed offsets and its lag behave over the
last few observations of each partition, not by comparing lag with a number someone picked.
Each partition keeps a window of the last ``size`` samples ``(timestamp, committed offset,
lag)``; the rules, applied in this order, are Burrow's ("Consumer Lag Evaluation Rules"):

1. **OK** when the current lag is 0 or the lag was 0 in any sample of the window: the consumer
   has caught up within the window, whatever else happened.
2. **REWIND** when the committed offset went backwards between two samples (someone reset
   the group, or a consumer committed an old offset).
3. **STOP** when the time since the consumer's last commit is longer than the time the window
   spans up to that commit (``now - last_commit > last_commit - oldest sample``): the consumer
   stopped committing.
4. **STALL** when the committed offset did not change over the whole window although there is
   lag, and the consumer is still committing (it would be STOP otherwise): it is alive but
   makes no progress.
5. **WARN** when the offsets advance but the lag never decreases from one sample to the next
   (it stays fixed or grows): the consumer is too slow to catch up.
6. **OK** otherwise.

A window with a single sample and lag has nothing to compare yet and is OK. **ERR** means
missing data (no window at all, no committed offset while there is something to consume, or
the broker did not answer); the monitor assigns it, these rules never do.

Burrow reads every commit from ``__consumer_offsets`` and so knows when each one happened. A
monitor that polls the offset API sees only the committed value, so :class:`PartitionWindow`
takes as the time of the last commit the latest sample in which the offset moved or a live
member of the group owned the partition (a live consumer re-committing the same offset is what
Burrow calls stalled; a consumer that left the group commits nothing).

A group's status is its worst partition's, in the order
OK < WARN < ERR < REWIND < STALL < STOP: data that is missing is worse than a healthy or merely
slow reading, while a measured failure says more than missing data.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise


class LagStatus(StrEnum):
    """A partition's or a group's status, named as Burrow names them."""

    OK = "OK"
    WARN = "WARN"
    ERR = "ERR"
    REWIND = "REWIND"
    STALL = "STALL"
    STOP = "STOP"


_SEVERITY = {status: rank for rank, status in enumerate(LagStatus)}


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """One observation of a partition: when, the group's committed offset, and its lag then."""

    at: float
    offset: int
    lag: int


def evaluate_partition(
    samples: Sequence[OffsetSample], *, now: float, last_commit_at: float | None = None
) -> LagStatus:
    """Apply Burrow's rules to one partition's window (oldest sample first).

    Args:
        samples: the window, oldest first.
        now: the time of the evaluation (epoch seconds).
        last_commit_at: when the consumer last committed; ``None`` means every sample is a
            commit (Burrow's own model), so the newest sample's time.
    """
    if not samples:
        return LagStatus.ERR
    if samples[-1].lag == 0 or any(sample.lag == 0 for sample in samples):
        return LagStatus.OK
    if len(samples) < 2:
        return LagStatus.OK
    pairs = list(pairwise(samples))
    if any(later.offset < earlier.offset for earlier, later in pairs):
        return LagStatus.REWIND
    committed_at = samples[-1].at if last_commit_at is None else last_commit_at
    if now - committed_at > committed_at - samples[0].at:
        return LagStatus.STOP
    if all(later.offset == earlier.offset for earlier, later in pairs):
        return LagStatus.STALL
    if all(later.lag >= earlier.lag for earlier, later in pairs):
        return LagStatus.WARN
    return LagStatus.OK


def worst_status(statuses: Iterable[str]) -> LagStatus:
    """The group status: the worst of its partitions' (ERR when there are none)."""
    ranked = [LagStatus(status) for status in statuses]
    if not ranked:
        return LagStatus.ERR
    return max(ranked, key=_SEVERITY.__getitem__)


class PartitionWindow:
    """The last ``size`` samples of one group's partition, and when it last committed."""

    def __init__(self, size: int) -> None:
        """Keep at most ``size`` samples (Burrow's window); ``size`` must be at least 2."""
        if size < 2:
            raise ValueError(f"a window needs at least 2 samples to compare, got {size}")
        self._samples: deque[OffsetSample] = deque(maxlen=size)
        self.last_commit_at: float | None = None

    @property
    def samples(self) -> tuple[OffsetSample, ...]:
        """The window, oldest first."""
        return tuple(self._samples)

    def record(self, at: float, offset: int, lag: int, *, consumer_alive: bool) -> None:
        """Add a sample taken at ``at``; samples not newer than the last one are ignored.

        Args:
            at: when the committed offset and the log end were read.
            offset: the committed offset.
            lag: log end offset minus committed offset at that time.
            consumer_alive: a live member of the group owns the partition, so it is committing
                even when the offset does not move.
        """
        previous = self._samples[-1] if self._samples else None
        if previous is not None and at <= previous.at:
            return
        if previous is None or offset != previous.offset or consumer_alive:
            self.last_commit_at = at
        self._samples.append(OffsetSample(at, offset, lag))

    def status(self, now: float) -> LagStatus:
        """The partition's status at ``now``."""
        return evaluate_partition(self._samples, now=now, last_commit_at=self.last_commit_at)
