"""Burrow's evaluation rules over a window of (time, committed offset, lag) samples."""

from __future__ import annotations

import pytest

from omnirouter.ops.burrow import (
    LagStatus,
    OffsetSample,
    PartitionWindow,
    evaluate_partition,
    worst_status,
)


def _window(*rows: tuple[float, int, int]) -> list[OffsetSample]:
    return [OffsetSample(at, offset, lag) for at, offset, lag in rows]


def test_zero_lag_anywhere_in_the_window_is_ok_even_when_everything_else_looks_bad() -> None:
    # Offsets went backwards and the consumer stopped long ago, but it caught up in the window.
    samples = _window((0, 100, 5), (10, 90, 0), (20, 90, 7))
    assert evaluate_partition(samples, now=10_000) == LagStatus.OK


def test_current_lag_zero_is_ok() -> None:
    samples = _window((0, 100, 5), (10, 100, 6), (20, 110, 0))
    assert evaluate_partition(samples, now=25) == LagStatus.OK


def test_committed_offset_going_backwards_is_a_rewind() -> None:
    samples = _window((0, 100, 5), (10, 120, 5), (20, 110, 30))
    assert evaluate_partition(samples, now=20) == LagStatus.REWIND


def test_rewind_outranks_stop() -> None:
    samples = _window((0, 100, 5), (10, 90, 20))
    assert evaluate_partition(samples, now=1_000, last_commit_at=10) == LagStatus.REWIND


def test_a_consumer_still_committing_the_same_offset_with_lag_is_stalled() -> None:
    samples = _window((0, 100, 5), (10, 100, 10), (20, 100, 15))
    # Burrow's own model: every sample is a commit, so the last commit is the newest sample.
    assert evaluate_partition(samples, now=20) == LagStatus.STALL
    assert evaluate_partition(samples, now=20, last_commit_at=20) == LagStatus.STALL


def test_no_commit_for_longer_than_the_window_spans_is_a_stop() -> None:
    samples = _window((0, 100, 5), (10, 110, 10), (20, 120, 15))
    # Last commit at 20, window from 0: stopped once more than 20 s passed since.
    assert evaluate_partition(samples, now=40) == LagStatus.WARN
    assert evaluate_partition(samples, now=40.001) == LagStatus.STOP


def test_stop_uses_the_last_commit_not_the_newest_sample() -> None:
    samples = _window((0, 100, 5), (10, 100, 15), (20, 100, 25), (30, 100, 35))
    # The offset last moved before the window began: stopped, not merely stalled.
    assert evaluate_partition(samples, now=30, last_commit_at=0) == LagStatus.STOP
    # The same offsets from a consumer that is still alive and committing: stalled.
    assert evaluate_partition(samples, now=30, last_commit_at=30) == LagStatus.STALL


def test_stop_boundary_is_strict() -> None:
    samples = _window((0, 100, 5), (10, 105, 15), (20, 110, 25))
    # Last commit at 10, window from 0: at now=20 the silence (10 s) equals the span (10 s).
    assert evaluate_partition(samples, now=20, last_commit_at=10) == LagStatus.WARN
    assert evaluate_partition(samples, now=20.5, last_commit_at=10) == LagStatus.STOP


def test_advancing_offsets_with_lag_that_never_decreases_is_a_warning() -> None:
    growing = _window((0, 100, 5), (10, 110, 8), (20, 120, 12))
    fixed = _window((0, 100, 5), (10, 110, 5), (20, 120, 5))
    assert evaluate_partition(growing, now=20) == LagStatus.WARN
    assert evaluate_partition(fixed, now=20) == LagStatus.WARN


def test_lag_that_decreases_once_in_the_window_is_ok() -> None:
    samples = _window((0, 100, 5), (10, 110, 8), (20, 120, 7), (30, 130, 9))
    assert evaluate_partition(samples, now=30) == LagStatus.OK


def test_a_single_sample_with_lag_has_nothing_to_compare_and_is_ok() -> None:
    assert evaluate_partition(_window((0, 100, 50)), now=1_000) == LagStatus.OK


def test_no_samples_is_missing_data() -> None:
    assert evaluate_partition([], now=0) == LagStatus.ERR


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        (["OK", "OK"], LagStatus.OK),
        (["OK", "WARN"], LagStatus.WARN),
        (["WARN", "ERR", "OK"], LagStatus.ERR),
        (["ERR", "REWIND"], LagStatus.REWIND),
        (["REWIND", "STALL", "WARN"], LagStatus.STALL),
        (["STALL", "STOP", "REWIND", "ERR"], LagStatus.STOP),
        ([], LagStatus.ERR),
    ],
)
def test_a_group_takes_its_worst_partition_status(statuses: list[str], worst: LagStatus) -> None:
    assert worst_status(statuses) == worst


def test_the_window_keeps_only_the_last_samples() -> None:
    window = PartitionWindow(3)
    for second in range(5):
        window.record(float(second), 100 + second, 10, consumer_alive=True)
    assert [s.at for s in window.samples] == [2.0, 3.0, 4.0]


def test_the_window_ignores_samples_that_are_not_newer() -> None:
    window = PartitionWindow(3)
    window.record(10.0, 100, 5, consumer_alive=False)
    window.record(10.0, 200, 5, consumer_alive=False)
    window.record(9.0, 300, 5, consumer_alive=False)
    assert [s.offset for s in window.samples] == [100]


def test_the_last_commit_is_when_the_offset_last_moved_unless_a_member_owns_it() -> None:
    window = PartitionWindow(4)
    window.record(0.0, 100, 5, consumer_alive=False)
    window.record(1.0, 110, 5, consumer_alive=False)
    window.record(2.0, 110, 9, consumer_alive=False)
    assert window.last_commit_at == 1.0
    window.record(3.0, 110, 14, consumer_alive=True)
    assert window.last_commit_at == 3.0


def test_a_consumer_that_left_its_group_turns_from_ok_to_stop() -> None:
    window = PartitionWindow(4)
    # Healthy: offsets move and the lag touches zero.
    for second, (offset, lag) in enumerate([(100, 0), (150, 3), (200, 1)]):
        window.record(float(second), offset, lag, consumer_alive=True)
    assert window.status(2.0) == LagStatus.OK
    # The consumer leaves; production continues, the committed offset stays at 200.
    statuses = []
    for second in range(3, 10):
        lag = 1 + 50 * (second - 2)
        window.record(float(second), 200, lag, consumer_alive=False)
        statuses.append(window.status(float(second)))
    # OK while the zero-lag sample is in the window, then STOP (never committed since t=2).
    assert statuses[0] == LagStatus.OK
    assert statuses[-1] == LagStatus.STOP
    assert set(statuses) <= {LagStatus.OK, LagStatus.STOP}


def test_a_live_consumer_that_makes_no_progress_is_stalled() -> None:
    window = PartitionWindow(3)
    for second in range(4):
        window.record(float(second), 500, 10 + second, consumer_alive=True)
    assert window.status(3.0) == LagStatus.STALL


def test_a_window_needs_room_for_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        PartitionWindow(1)
