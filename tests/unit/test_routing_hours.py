"""Business hours: open and next opening in the queue's own time zone, whatever the caller's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from omnirouter.pipeline.routing.hours import BusinessHours, Weekday

BERLIN = ZoneInfo("Europe/Berlin")
WORKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)

# Mon-Fri 09:00-17:00 in Berlin, closed on Christmas Day (a Wednesday in 2024).
OFFICE = BusinessHours(
    timezone="Europe/Berlin",
    weekly=dict.fromkeys(WORKDAYS, ("09:00-17:00",)),
    closed_dates=(date(2024, 12, 25),),
)
# Mondays with a lunch break.
SPLIT = BusinessHours(
    timezone="Europe/Berlin", weekly={Weekday.MON: ("09:00-12:00", "13:00-17:00")}
)
# Every day, all day, except Christmas Day.
ALL_DAY = BusinessHours(
    timezone="Europe/Berlin",
    weekly=dict.fromkeys(Weekday, ("00:00-24:00",)),
    closed_dates=(date(2024, 12, 25),),
)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- is_open -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        # Summer: Berlin is UTC+2, so 09:00-17:00 local is 07:00-15:00 UTC.
        pytest.param(_utc(2024, 7, 1, 6, 59), False, id="summer-before-opening"),
        pytest.param(_utc(2024, 7, 1, 7, 0), True, id="summer-opening"),
        pytest.param(_utc(2024, 7, 1, 14, 59), True, id="summer-last-minute"),
        pytest.param(_utc(2024, 7, 1, 15, 0), False, id="summer-closing"),
        # Winter: Berlin is UTC+1, so the same hours are 08:00-16:00 UTC.
        pytest.param(_utc(2024, 1, 8, 7, 0), False, id="winter-07utc-is-08-local"),
        pytest.param(_utc(2024, 1, 8, 8, 0), True, id="winter-opening"),
        pytest.param(_utc(2024, 1, 8, 15, 59), True, id="winter-last-minute"),
        pytest.param(_utc(2024, 1, 8, 16, 0), False, id="winter-closing"),
        # Saturday
        pytest.param(_utc(2024, 7, 6, 10, 0), False, id="weekend"),
    ],
)
def test_is_open_reads_utc_instants_in_the_queue_time_zone_summer_and_winter(
    at: datetime, is_open: bool
) -> None:
    assert OFFICE.is_open(at) is is_open


def test_is_open_compares_instants_whatever_zone_the_caller_uses() -> None:
    # 03:30 in New York on 1 July 2024 is 09:30 in Berlin.
    new_york = datetime(2024, 7, 1, 3, 30, tzinfo=ZoneInfo("America/New_York"))
    assert OFFICE.is_open(new_york) is True
    assert OFFICE.is_open(new_york - timedelta(hours=1)) is False


def test_closing_time_is_exclusive() -> None:
    closing = datetime(2024, 7, 1, 17, 0, tzinfo=BERLIN)
    assert OFFICE.is_open(closing - timedelta(microseconds=1)) is True
    assert OFFICE.is_open(closing) is False


@pytest.mark.parametrize(
    "at",
    [
        datetime(2024, 7, 1, 0, 0, tzinfo=BERLIN),
        datetime(2024, 7, 6, 12, 0, tzinfo=BERLIN),
        datetime(2024, 7, 7, 23, 59, 59, 999_999, tzinfo=BERLIN),
    ],
    ids=["midnight", "saturday-noon", "last-microsecond-of-sunday"],
)
def test_00_00_to_24_00_is_open_all_day(at: datetime) -> None:
    assert ALL_DAY.is_open(at) is True


def test_closed_date_closes_the_whole_local_day() -> None:
    assert OFFICE.is_open(datetime(2024, 12, 24, 12, 0, tzinfo=BERLIN)) is True
    assert OFFICE.is_open(datetime(2024, 12, 25, 12, 0, tzinfo=BERLIN)) is False
    assert OFFICE.is_open(datetime(2024, 12, 26, 12, 0, tzinfo=BERLIN)) is True
    # The date is the queue's local date: 23:30 UTC on the 24th is already the 25th in Berlin.
    assert ALL_DAY.is_open(_utc(2024, 12, 24, 22, 30)) is True
    assert ALL_DAY.is_open(_utc(2024, 12, 24, 23, 30)) is False
    assert ALL_DAY.is_open(_utc(2024, 12, 25, 23, 0)) is True


# --- next_open -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "at", "opens"),
    [
        pytest.param(OFFICE, _utc(2024, 7, 1, 4, 0), _utc(2024, 7, 1, 7, 0), id="same-day-later"),
        pytest.param(SPLIT, _utc(2024, 7, 1, 10, 30), _utc(2024, 7, 1, 11, 0), id="after-lunch"),
        pytest.param(OFFICE, _utc(2024, 7, 2, 16, 0), _utc(2024, 7, 3, 7, 0), id="next-weekday"),
        pytest.param(OFFICE, _utc(2024, 7, 5, 15, 0), _utc(2024, 7, 8, 7, 0), id="over-weekend"),
        pytest.param(
            OFFICE, _utc(2024, 12, 24, 16, 0), _utc(2024, 12, 26, 8, 0), id="skips-closed-date"
        ),
        # Friday 29 March 2024 is still UTC+1 in Berlin, Monday 1 April already UTC+2.
        pytest.param(OFFICE, _utc(2024, 3, 29, 16, 0), _utc(2024, 4, 1, 7, 0), id="across-dst"),
        pytest.param(SPLIT, _utc(2024, 7, 1, 15, 0), _utc(2024, 7, 8, 7, 0), id="next-week"),
    ],
)
def test_next_open_is_the_next_opening_in_utc(
    hours: BusinessHours, at: datetime, opens: datetime
) -> None:
    result = hours.next_open(at)
    assert result == opens
    assert result.tzinfo is UTC
    assert hours.is_open(result) is True
    assert hours.is_open(result - timedelta(microseconds=1)) is False


def test_next_open_from_another_zone_is_still_in_utc() -> None:
    # Saturday 6 July 2024, 10:00 in Tokyo: the Berlin office opens Monday 09:00 local.
    at = datetime(2024, 7, 6, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    result = OFFICE.next_open(at)
    assert result == _utc(2024, 7, 8, 7, 0)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "at",
    [_utc(2024, 7, 1, 7, 0), _utc(2024, 7, 1, 12, 0), _utc(2024, 1, 8, 15, 59)],
    ids=["at-opening", "midday", "last-minute-in-winter"],
)
def test_next_open_of_an_open_instant_is_that_instant(at: datetime) -> None:
    assert OFFICE.next_open(at) == at


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weekly", "timezone", "message"),
    [
        pytest.param(
            {"mon": ["17:00-09:00"]},
            "Europe/Berlin",
            "mon: '17:00-09:00' ends before it starts",
            id="ends-before-start",
        ),
        pytest.param(
            {"mon": ["09:00-09:00"]}, "Europe/Berlin", "ends before it starts", id="empty-range"
        ),
        pytest.param(
            {"mon": ["9:00-17:00"]}, "Europe/Berlin", "is not HH:MM-HH:MM", id="not-hh-mm"
        ),
        pytest.param({"mon": []}, "Europe/Berlin", "weekly hours are empty", id="never-open"),
        pytest.param(
            {"mon": ["09:00-17:00"]}, "Mars/Olympus", "unknown time zone", id="unknown-zone"
        ),
        pytest.param(
            {"monday": ["09:00-17:00"]}, "Europe/Berlin", "Input should be 'mon'", id="bad-day"
        ),
    ],
)
def test_invalid_business_hours_are_rejected(
    weekly: dict[str, list[str]], timezone: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessHours.model_validate({"timezone": timezone, "weekly": weekly})


def test_a_range_ending_after_24_00_is_rejected() -> None:
    with pytest.raises(ValidationError):
        BusinessHours(timezone="Europe/Berlin", weekly={Weekday.MON: ("09:00-24:30",)})
