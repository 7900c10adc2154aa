"""Business hours per queue, in the queue's own time zone (pure)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Weekday(StrEnum):
    """Days of the week, as written in rules files."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_ORDER = list(Weekday)


class BusinessHours(BaseModel):
    """When a queue is staffed: weekly opening ranges ("09:00-17:30") and closed dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(description='IANA time zone, e.g. "Europe/Berlin".')
    weekly: dict[Weekday, tuple[str, ...]] = Field(description='e.g. {"mon": ["09:00-17:00"]}')
    closed_dates: tuple[date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("weekly")
    @classmethod
    def _ranges(cls, value: dict[Weekday, tuple[str, ...]]) -> dict[Weekday, tuple[str, ...]]:
        for day, ranges in value.items():
            for text in ranges:
                match = _RANGE.match(text)
                if match is None:
                    raise ValueError(f"{day}: {text!r} is not HH:MM-HH:MM")
                start, end = text.split("-")
                if end.startswith("24:") and end != "24:00":
                    raise ValueError(f"{day}: {text!r} ends after 24:00")
                if end <= start:
                    raise ValueError(f"{day}: {text!r} ends before it starts")
        return value

    @model_validator(mode="after")
    def _some_hours(self) -> Self:
        if not any(self.weekly.values()):
            raise ValueError("weekly hours are empty: the queue would never open")
        return self

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _ranges_on(self, day: date) -> list[tuple[time, time | None]]:
        if day in self.closed_dates:
            return []
        ranges = []
        for text in self.weekly.get(_ORDER[day.weekday()], ()):
            start, end = text.split("-")
            end_time = None if end == "24:00" else time.fromisoformat(end)
            ranges.append((time.fromisoformat(start), end_time))
        return ranges

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` (any zone) falls in an opening range."""
        local = at.astimezone(self._zone())
        now = local.time()
        return any(
            start <= now and (end is None or now < end)
            for start, end in self._ranges_on(local.date())
        )

    def next_open(self, at: datetime) -> datetime:
        """When the queue next opens (``at`` itself when open), in UTC."""
        if self.is_open(at):
            return at.astimezone(UTC)
        zone = self._zone()
        local = at.astimezone(zone)
        for offset in range(0, 370):
            day = local.date() + timedelta(days=offset)
            for start, _ in sorted(self._ranges_on(day), key=lambda r: r[0]):
                candidate = datetime.combine(day, start, tzinfo=zone)
                if candidate > local:
                    return candidate.astimezone(UTC)
        raise ValueError("no opening within a year")  # ruled out by the validators above
