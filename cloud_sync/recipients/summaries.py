"""Sums over a person's trips for digests and summaries, by day or month in Japan time.

Days and months are Japan's (``Asia/Tokyo``, ``zoneinfo``): a trip belongs to the day (month)
its end falls in there. Rates are per 100 km; shares are weighted by driving time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from msp_protocol.records import parse_ts

JAPAN = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True, slots=True)
class TripSums:
    """What a set of trips adds up to."""

    trips: int
    distance_km: float
    duration_s: float
    events: int
    night_s: float

    @property
    def events_per_100km(self) -> float | None:
        """Events per 100 km, ``None`` without distance."""
        return None if self.distance_km <= 0 else round(100.0 * self.events / self.distance_km, 2)

    @property
    def night_share(self) -> float | None:
        """Share of driving time at night, ``None`` without driving."""
        return None if self.duration_s <= 0 else round(self.night_s / self.duration_s, 4)


def japan_day(instant: datetime) -> date:
    """The Japan calendar day of an aware instant."""
    return instant.astimezone(JAPAN).date()


def japan_month(instant: datetime) -> str:
    """The Japan month (``YYYY-MM``) of an aware instant."""
    return instant.astimezone(JAPAN).strftime("%Y-%m")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The instants a Japan day starts and ends (exclusive), aware."""
    start = datetime(day.year, day.month, day.day, tzinfo=JAPAN)
    return start, start + timedelta(days=1)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The instants a Japan month (``YYYY-MM``) starts and ends (exclusive); raises
    ``ValueError`` for another text."""
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=JAPAN)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=JAPAN)
    return start, end


def trip_events(row: Mapping[str, object]) -> int:
    """The number of events a stored trip counts (its ``events`` column: JSON or a mapping)."""
    value = row.get("events")
    counts = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(counts, Mapping):
        return 0
    return sum(int(n) for n in counts.values() if isinstance(n, int | float))


def trip_end(row: Mapping[str, object]) -> datetime:
    """A stored trip's end instant."""
    return parse_ts(str(row["end"]))


def sums(rows: Sequence[Mapping[str, object]]) -> TripSums:
    """The sums over stored trip rows."""
    duration = [float(str(r["duration_s"])) for r in rows]
    night = [float(str(r["night_share"])) * d for r, d in zip(rows, duration, strict=True)]
    return TripSums(len(rows), round(sum(float(str(r["distance_km"])) for r in rows), 3),
                    sum(duration), sum(trip_events(r) for r in rows), sum(night))  # fmt: skip
