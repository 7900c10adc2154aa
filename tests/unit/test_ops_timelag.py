"""Time lag from a table of (log end offset, wall time) samples, as kafka-lag-exporter does it."""

from __future__ import annotations

import pytest

from omnirouter.ops.timelag import EndOffsetPoint, EndOffsetTable


def _table(*points: tuple[int, float], **limits: float) -> EndOffsetTable:
    table = EndOffsetTable(**limits)  # type: ignore[arg-type]
    for offset, at in points:
        table.add(offset, at)
    return table


def test_an_offset_between_two_samples_is_interpolated() -> None:
    table = _table((100, 10.0), (200, 20.0), (400, 30.0))
    assert table.produced_at(150) == pytest.approx(15.0)
    assert table.produced_at(300) == pytest.approx(25.0)
    assert table.time_lag(300, now=31.0) == pytest.approx(6.0)


def test_an_offset_on_a_sample_gets_that_samples_time() -> None:
    table = _table((100, 10.0), (200, 20.0), (400, 30.0))
    assert table.produced_at(200) == pytest.approx(20.0)
    assert table.produced_at(100) == pytest.approx(10.0)


def test_an_offset_at_or_past_the_log_end_has_no_lag() -> None:
    table = _table((100, 10.0), (200, 20.0))
    assert table.produced_at(200) is None
    assert table.time_lag(200, now=50.0) == 0.0
    assert table.time_lag(250, now=50.0) == 0.0


def test_an_offset_older_than_the_table_is_extrapolated_from_the_oldest_samples() -> None:
    # 10 offsets per second between the two oldest samples; a faster burst later is ignored.
    table = _table((100, 10.0), (200, 20.0), (1200, 30.0))
    assert table.produced_at(50) == pytest.approx(5.0)
    assert table.time_lag(50, now=30.0) == pytest.approx(25.0)


def test_extrapolation_starts_before_a_flat_start_of_the_table() -> None:
    # Nothing produced between 10 s and 20 s: offset 90 was written before 10 s, at the
    # rate of the first rising segment (10 offsets per second).
    table = _table((100, 10.0), (100, 20.0), (200, 30.0))
    assert table.produced_at(90) == pytest.approx(9.0)


def test_a_table_without_any_rise_gives_its_oldest_time_as_a_lower_bound() -> None:
    flat = _table((100, 10.0), (100, 20.0), (100, 30.0))
    assert flat.produced_at(40) == pytest.approx(10.0)
    single = _table((100, 10.0))
    assert single.produced_at(40) == pytest.approx(10.0)
    assert single.time_lag(40, now=10.0) == 0.0


def test_an_empty_table_reports_no_lag() -> None:
    table = EndOffsetTable()
    assert table.produced_at(5) is None
    assert table.time_lag(5, now=100.0) == 0.0


def test_an_offset_at_the_end_of_a_flat_run_gets_the_end_of_the_run() -> None:
    # The log end sat at 200 from 20 s to 40 s; record 200 was written after 40 s.
    table = _table((100, 10.0), (200, 20.0), (200, 30.0), (200, 40.0), (300, 50.0))
    assert table.produced_at(200) == pytest.approx(40.0)
    assert table.produced_at(250) == pytest.approx(45.0)


def test_a_flat_run_is_kept_as_its_two_ends() -> None:
    table = _table((100, 10.0), (200, 20.0), (200, 30.0), (200, 40.0), (200, 50.0))
    assert table.points == (
        EndOffsetPoint(100, 10.0),
        EndOffsetPoint(200, 20.0),
        EndOffsetPoint(200, 50.0),
    )


def test_samples_that_are_not_newer_are_ignored() -> None:
    table = _table((100, 10.0), (200, 20.0), (300, 20.0), (400, 15.0))
    assert table.points == (EndOffsetPoint(100, 10.0), EndOffsetPoint(200, 20.0))


def test_a_log_end_going_backwards_restarts_the_table() -> None:
    # The topic was deleted and created again: the old samples say nothing about the new log.
    table = _table((100, 10.0), (200, 20.0), (5, 30.0))
    assert table.points == (EndOffsetPoint(5, 30.0),)


def test_the_table_keeps_at_most_max_points() -> None:
    table = _table(*[(10 * i, float(i)) for i in range(10)], max_points=4)
    assert [p.offset for p in table.points] == [60, 70, 80, 90]
    # Offsets older than the table are extrapolated from what is left.
    assert table.produced_at(30) == pytest.approx(3.0)


def test_the_table_forgets_samples_older_than_max_age_but_keeps_two() -> None:
    table = _table((0, 0.0), (100, 100.0), (200, 200.0), (300, 300.0), max_age_s=150.0)
    assert [p.at for p in table.points] == [200.0, 300.0]
    old = _table((0, 0.0), (100, 1000.0), max_age_s=10.0)
    assert len(old.points) == 2


def test_a_table_needs_room_for_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        EndOffsetTable(max_points=1)
