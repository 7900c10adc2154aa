"""A worker asks for fuller fetches only while it reads enough records to be busy."""

from __future__ import annotations

from omnirouter.pipeline.fetching import FetchSizer, FetchSizing

LIGHT = FetchSizing(min_bytes=1, max_wait_ms=100)
BUSY = FetchSizing(min_bytes=16_384, max_wait_ms=20)


def _sizer(busy_from: float = 200) -> FetchSizer:
    return FetchSizer(LIGHT, BUSY, busy_from, window_s=1.0)


def test_a_worker_starts_light_and_stays_light_below_the_threshold() -> None:
    sizer = _sizer()
    assert sizer.current == LIGHT
    assert sizer.after_fetch(0, 0.0) is None
    assert sizer.after_fetch(199, 1.0) is None  # 199 records in the window's second
    assert sizer.current == LIGHT


def test_nothing_changes_before_a_window_closes() -> None:
    sizer = _sizer()
    sizer.after_fetch(0, 10.0)
    assert sizer.after_fetch(5_000, 10.5) is None
    assert sizer.current == LIGHT
    assert sizer.after_fetch(0, 11.0) == BUSY  # 5,000 records in that second


def test_busy_traffic_turns_fetches_fuller_once() -> None:
    sizer = _sizer()
    sizer.after_fetch(0, 0.0)
    assert sizer.after_fetch(400, 2.0) == BUSY  # 200 a second, counted over the whole window
    assert sizer.after_fetch(300, 3.0) is None  # still busy: no change to report
    assert sizer.current == BUSY


def test_a_busy_worker_goes_back_only_below_half_the_threshold() -> None:
    sizer = _sizer()
    sizer.after_fetch(0, 0.0)
    assert sizer.after_fetch(250, 1.0) == BUSY
    assert sizer.after_fetch(100, 2.0) is None  # half the threshold: still busy
    assert sizer.current == BUSY
    assert sizer.after_fetch(99, 3.0) == LIGHT
    assert sizer.after_fetch(150, 4.0) is None  # between the two: light stays light
    assert sizer.current == LIGHT


def test_a_threshold_of_zero_keeps_fetches_full_from_the_start() -> None:
    sizer = _sizer(busy_from=0)
    assert sizer.current == BUSY
    sizer.after_fetch(0, 0.0)
    assert sizer.after_fetch(0, 5.0) is None
    assert sizer.current == BUSY


def test_an_infinite_threshold_keeps_fetches_light_whatever_the_traffic() -> None:
    # The dispatcher's app: its fetches stay answered at their first record.
    sizer = _sizer(busy_from=float("inf"))
    sizer.after_fetch(0, 0.0)
    assert sizer.after_fetch(1_000_000, 1.0) is None
    assert sizer.current == LIGHT
