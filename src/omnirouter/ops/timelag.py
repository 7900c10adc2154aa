"""Consumer lag in seconds, estimated as kafka-lag-exporter estimates it.

Offset lag says how many records a group is behind; time lag says how old the oldest record it
has not consumed is, which is what an operator (and a customer waiting for an answer) feels.
Kafka does not store when the log end reached an offset, so every sample of a partition's log
end offset is kept with the wall time it was read, in a small table per partition. The time lag
of a committed offset ``C`` is ``now`` minus the time at which the log end was at ``C``:

- linear interpolation between the two samples around ``C`` (the newest such pair);
- when ``C`` is older than the table, extrapolation backwards from the oldest sample at the
  rate of the oldest rising pair of samples;
- 0 when ``C`` has reached the log end.

As in kafka-lag-exporter, a run of samples at the same offset (nothing produced) is kept as its
two ends only, so an idle partition does not fill the table. The table is bounded both in
points and in age.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import pairwise

DEFAULT_MAX_POINTS = 100
DEFAULT_MAX_AGE_S = 3600.0


@dataclass(frozen=True, slots=True)
class EndOffsetPoint:
    """The partition's log end offset as read at wall time ``at`` (epoch seconds)."""

    offset: int
    at: float


class EndOffsetTable:
    """Samples of one partition's log end offset, for estimating when an offset was produced."""

    def __init__(
        self, *, max_points: int = DEFAULT_MAX_POINTS, max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> None:
        """Keep at most ``max_points`` samples, none older than ``max_age_s`` but the newest 2."""
        if max_points < 2:
            raise ValueError(f"interpolation needs at least 2 points, got {max_points}")
        self._points: deque[EndOffsetPoint] = deque()
        self._max_points = max_points
        self._max_age_s = max_age_s

    @property
    def points(self) -> tuple[EndOffsetPoint, ...]:
        """The table, oldest first."""
        return tuple(self._points)

    def add(self, offset: int, at: float) -> None:
        """Record that the log end was ``offset`` at ``at``.

        A sample not newer than the last is ignored. A log end that went backwards means the
        partition was recreated or truncated: what the table knew no longer applies.
        """
        points = self._points
        point = EndOffsetPoint(offset, at)
        if points and at <= points[-1].at:
            return
        if points and offset < points[-1].offset:
            points.clear()
        if len(points) >= 2 and points[-1].offset == offset == points[-2].offset:
            # Nothing produced since: move the right end of the flat run instead of adding one.
            points[-1] = point
        else:
            points.append(point)
        while len(points) > self._max_points:
            points.popleft()
        while len(points) > 2 and points[0].at < at - self._max_age_s:
            points.popleft()

    def produced_at(self, offset: int) -> float | None:
        """When the log end was at ``offset`` (epoch seconds); ``None`` when it still is.

        With a single point, or only one offset in the whole table, there is no rate to
        extrapolate with; the oldest point's time is returned, which the true time precedes.
        """
        points = self._points
        if not points or offset >= points[-1].offset:
            return None
        pairs = list(pairwise(points))
        for left, right in reversed(pairs):
            if left.offset <= offset <= right.offset and left.offset < right.offset:
                return _time_on_line(left, right, offset)
        oldest = points[0]
        rising = next(((a, b) for a, b in pairs if a.offset < b.offset), None)
        if rising is None:
            return oldest.at
        left, right = rising
        seconds_per_offset = (right.at - left.at) / (right.offset - left.offset)
        return oldest.at - (oldest.offset - offset) * seconds_per_offset

    def time_lag(self, committed: int, now: float) -> float:
        """Seconds since the log end was at ``committed``: how old the oldest unread record is."""
        produced = self.produced_at(committed)
        if produced is None:
            return 0.0
        return max(0.0, now - produced)


def _time_on_line(left: EndOffsetPoint, right: EndOffsetPoint, offset: int) -> float:
    return left.at + (offset - left.offset) * (right.at - left.at) / (right.offset - left.offset)
