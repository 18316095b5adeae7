"""A trip's contributions to public statistics: per H3 cell (resolution 7) and UTC hour.

Only with the driver's ``public`` consent (``msp_protocol.consent.PUBLIC``) does the agent
make one: while a trip is open, each interval between two speed samples adds its distance and
(when the vehicle is not stopped) its time to the cell the vehicle was in and the UTC hour of
the interval's middle; fuel-rate (or, without one, MAF) samples add their fuel the same way.
At the trip's end the totals become ``stats`` records (one per hour, at most 256 cells each),
with no session id: the positions themselves never leave the car, only which of the roughly
5 km² cells a trip drove in, and how much, in which hour. docs/public.md.

CO2 is the fuel burned times the factor of the vehicle's fuel (``ScoringConfig.co2_kg_per_l``:
2.32 kg per litre of petrol, 2.58 of diesel, the Japanese Ministry of the Environment's
calculation factors, as the trip record uses: docs/scoring.md). An interval with no fresh
position (``location_max_age_s``) is in no cell: it is counted (``unlocated_km``) and left out.

The samples are the scorer's, read through its ``VehicleState`` (the same checked values the
trip totals come from), so the contributions add up to the trip's own distance and fuel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import h3

from msp_protocol import bodies
from msp_protocol.records import checked, format_ts

from . import signals as sig
from .samples import Sample
from .scoring import ScoringConfig, Trip
from .scoring.state import VehicleState, maf_fuel_lph

log = logging.getLogger(__name__)

#: The H3 resolution of public statistics (cells of about 5.2 km², DESIGN.md).
RESOLUTION: Final = 7
#: The most cells one ``stats`` record carries (its schema's ``maxItems``).
MAX_CELLS: Final = 256
_HOUR: Final = 3600.0


@dataclass(slots=True)
class _Tally:
    """What one trip drove in one (cell, hour) so far (mutable: added to per sample)."""

    distance_km: float = 0.0
    duration_s: float = 0.0
    fuel_rate_l: float = 0.0
    maf_l: float = 0.0


class PublicStats:
    """Builds one trip at a time's contributions from the scorer's samples.

    :meth:`feed` every sample after the scorer took it, with whether a trip is open;
    :meth:`trip_ended` turns what the trip added up to into ``stats`` bodies and starts
    afresh. Figures of the intervals outside trips are never kept.
    """

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.unlocated_km = 0.0
        self._tallies: dict[tuple[str, int], _Tally] = {}
        self._last_speed: tuple[float, float, bool] | None = None  # ts, km/h, counting time
        self._last_fuel: tuple[float, float] | None = None  # ts, l/h
        self._last_maf: tuple[float, float] | None = None
        self._fuel_rate_seen = False  # the trip has a fuel-rate signal: MAF is not used
        self._maf_seen = False  # the trip has a fuel estimate from MAF
        self._cell_of: tuple[float, float, str] | None = None  # lat, lon, its cell

    def feed(self, sample: Sample, state: VehicleState, in_trip: bool) -> None:
        """Take the sample the scorer just took (``state`` is the scorer's, already updated)."""
        if not in_trip:
            self._last_speed = self._last_fuel = self._last_maf = None
            return
        name, ts = sample.name, sample.timestamp
        if name == sig.SPEED:
            self._speed(ts, state)
        elif name == sig.FUEL_RATE and state.fuel_rate is not None:
            self._fuel_rate_seen = True
            self._last_fuel = self._fuel(ts, state, state.fuel_rate, self._last_fuel, True)
        elif name == sig.MAF:
            rate = maf_fuel_lph(state.maf, self.config)
            if rate is not None:
                self._maf_seen = True
                self._last_maf = self._fuel(ts, state, rate, self._last_maf, False)

    def _speed(self, ts: float, state: VehicleState) -> None:
        speed = state.speed if state.speed is not None else 0.0
        last, self._last_speed = self._last_speed, (ts, speed, not state.stopped)
        if last is None:
            return
        step = ts - last[0]
        if not 0 < step <= self.config.max_gap_s:
            return
        distance = (speed + last[1]) / 2.0 * step / _HOUR
        tally = self._tally(ts, step, state)
        if tally is None:
            self.unlocated_km += distance
            return
        tally.distance_km += distance
        if last[2]:  # moving or the engine running through the interval: time driven
            tally.duration_s += step

    def _fuel(
        self, ts: float, state: VehicleState, rate: float, last: tuple[float, float] | None,
        from_rate: bool,
    ) -> tuple[float, float]:
        if last is not None and 0 < ts - last[0] <= self.config.max_gap_s:
            litres = (rate + last[1]) / 2.0 * (ts - last[0]) / _HOUR
            tally = self._tally(ts, ts - last[0], state)
            if tally is not None:
                if from_rate:
                    tally.fuel_rate_l += litres
                else:
                    tally.maf_l += litres
        return ts, rate

    def _tally(self, ts: float, step: float, state: VehicleState) -> _Tally | None:
        """The tally of the cell the vehicle is in at ``ts`` and the hour of the interval's
        middle; None without a fresh position."""
        location = state.location(ts)
        if location is None:
            return None
        cached = self._cell_of
        if cached is not None and cached[0] == location.lat and cached[1] == location.lon:
            cell = cached[2]
        else:
            cell = h3.latlng_to_cell(location.lat, location.lon, RESOLUTION)
            self._cell_of = (location.lat, location.lon, cell)
        key = (cell, int((ts - step / 2.0) // _HOUR))
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        return tally

    def discard(self) -> None:
        """Forget the open trip's figures (the consent ended, or the session did)."""
        self._tallies.clear()
        self._fuel_rate_seen = self._maf_seen = False
        self._last_speed = self._last_fuel = self._last_maf = None

    def trip_ended(self, trip: Trip) -> list[bodies.Stats]:
        """The ``stats`` bodies of what the trip that just ended drove (checked against the
        schema), by hour, and a fresh start for the next trip."""
        tallies, from_rate, from_maf = self._tallies, self._fuel_rate_seen, self._maf_seen
        self._tallies = {}
        self.discard()
        by_hour: dict[int, list[bodies.CellStats]] = {}
        for (cell, hour), t in sorted(tallies.items(), key=lambda item: (item[0][1], item[0][0])):
            if t.distance_km <= 0 and t.duration_s <= 0:
                continue
            by_hour.setdefault(hour, []).append(self._cell(cell, t, from_rate, from_maf))
        out = []
        for hour, cells in sorted(by_hour.items()):
            for first in range(0, len(cells), MAX_CELLS):
                out.append(checked(bodies.Stats(format_ts(hour * _HOUR).replace(".000Z", "Z"),
                                                tuple(cells[first:first + MAX_CELLS]))))
        if out:
            log.info("trip ending at t=%.3f: public contributions in %d cell-hours", trip.end,
                     sum(len(b.cells) for b in out))  # fmt: skip
        return out

    def _cell(self, cell: str, t: _Tally, from_rate: bool, from_maf: bool) -> bodies.CellStats:
        fuel: float | None = t.fuel_rate_l if from_rate else t.maf_l if from_maf else None
        speed = t.distance_km / t.duration_s * _HOUR if t.duration_s > 0 else 0.0
        return bodies.CellStats(
            cell=cell,
            distance_km=round(t.distance_km, 4),
            duration_s=round(min(t.duration_s, _HOUR), 1),
            mean_speed_kmh=round(min(speed, 500.0), 1),
            fuel_l=None if fuel is None else round(fuel, 4),
            co2_kg=None if fuel is None else round(fuel * self.config.co2_kg_per_l, 4),
        )
