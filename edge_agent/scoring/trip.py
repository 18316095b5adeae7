"""A trip's figures as they accumulate: distance, odometer, fuel, CO2, idle time, night share."""

from __future__ import annotations

import logging
import math

from .config import ScoringConfig
from .model import Event, Trip
from .state import VehicleState, maf_fuel_lph

log = logging.getLogger(__name__)

_DAY = 86400.0


def night_share(start: float, end: float, config: ScoringConfig) -> float:
    """Fraction of ``[start, end]`` (epoch seconds) inside the local night hours.

    Local time is UTC + ``utc_offset_h``; night runs from ``night_start_h`` to
    ``night_end_h`` (across midnight when start > end, as with the default 22-5).
    """
    if end <= start:
        return 0.0
    offset = config.utc_offset_h * 3600.0
    night_from, night_to = config.night_start_h * 3600.0, config.night_end_h * 3600.0
    if night_to <= night_from:
        night_to += _DAY
    local_start, local_end = start + offset, end + offset
    total = 0.0
    day = math.floor(local_start / _DAY) - 1
    while day * _DAY + night_from < local_end:
        lo, hi = day * _DAY + night_from, day * _DAY + night_to
        total += max(0.0, min(hi, local_end) - max(lo, local_start))
        day += 1
    return min(1.0, total / (end - start))


class _Integral:
    """Trapezoid integral of a rate over time (per hour), skipping gaps in the data."""

    __slots__ = ("_last", "max_gap_s", "total")

    def __init__(self, max_gap_s: float) -> None:
        self.max_gap_s = max_gap_s
        self.total = 0.0
        self._last: tuple[float, float] | None = None

    def add(self, timestamp: float, rate_per_h: float) -> float:
        """Add a reading; return the increment (0 for the first reading or after a gap)."""
        last, self._last = self._last, (timestamp, rate_per_h)
        if last is None:
            return 0.0
        step = timestamp - last[0]
        if step > self.max_gap_s:
            log.info("no data for %.1f s before t=%.3f: not integrated", step, timestamp)
            return 0.0
        increment = (rate_per_h + last[1]) / 2.0 * step / 3600.0
        self.total += increment
        return increment

    @property
    def used(self) -> bool:
        """Whether any reading arrived."""
        return self._last is not None


class TripAccumulator:
    """Collects one trip's figures from the samples of that trip (see :class:`Trip`)."""

    def __init__(self, config: ScoringConfig, start: float) -> None:
        self.config = config
        self.start = start
        self.events: list[Event] = []
        self._distance = _Integral(config.max_gap_s)
        self._fuel_rate = _Integral(config.max_gap_s)
        self._maf_fuel = _Integral(config.max_gap_s)
        self._idle_fuel_rate = 0.0
        self._idle_fuel_maf = 0.0
        self._max_speed = 0.0
        self._idle_s = 0.0
        self._last_speed: tuple[float, bool] | None = None  # (timestamp, was idling)
        self._odometer: tuple[float, float] | None = None  # (first, last)

    def add_speed(self, timestamp: float, state: VehicleState) -> None:
        """Integrate distance and idle time up to ``timestamp``."""
        speed = state.speed if state.speed is not None else 0.0
        self._distance.add(timestamp, speed)
        self._max_speed = max(self._max_speed, speed)
        idling = state.idling
        if self._last_speed is not None:
            last_ts, was_idling = self._last_speed
            if was_idling and timestamp - last_ts <= self.config.max_gap_s:
                self._idle_s += timestamp - last_ts
        self._last_speed = (timestamp, idling)

    def add_fuel_rate(self, timestamp: float, state: VehicleState) -> None:
        """Integrate the fuel-rate signal (l/h)."""
        if state.fuel_rate is None:
            return
        increment = self._fuel_rate.add(timestamp, state.fuel_rate)
        if state.idling:
            self._idle_fuel_rate += increment

    def add_maf(self, timestamp: float, state: VehicleState) -> None:
        """Integrate fuel estimated from MAF (used only when there is no fuel-rate signal)."""
        rate = maf_fuel_lph(state.maf, self.config)
        if rate is None:
            return
        increment = self._maf_fuel.add(timestamp, rate)
        if state.idling:
            self._idle_fuel_maf += increment

    def add_odometer(self, value: float) -> bool:
        """Take an odometer reading; False (rejected) when it runs backwards."""
        if self._odometer is None:
            self._odometer = (value, value)
            return True
        first, last = self._odometer
        if value < last:
            return False
        self._odometer = (first, value)
        return True

    def _fuel(self) -> tuple[float | None, float | None]:
        if self._fuel_rate.used:
            return self._fuel_rate.total, self._idle_fuel_rate
        if self._maf_fuel.used:
            return self._maf_fuel.total, self._idle_fuel_maf
        return None, None

    def build(self, end: float) -> Trip:
        """The finished trip, ending at ``end``."""
        config = self.config
        distance = self._distance.total
        odometer = None if self._odometer is None else self._odometer[1] - self._odometer[0]
        mismatch = False
        if odometer is not None:
            gap = abs(distance - odometer)
            mismatch = (
                gap > config.odometer_tolerance * max(distance, odometer)
                and gap > config.odometer_resolution_km
            )
            if mismatch:
                log.warning(
                    "trip from t=%.3f: integrated distance %.3f km and odometer %.3f km "
                    "differ by more than %.0f %%",
                    self.start,
                    distance,
                    odometer,
                    config.odometer_tolerance * 100,
                )
        fuel, idle_fuel = self._fuel()
        return Trip(
            start=self.start,
            end=end,
            distance_km=distance,
            odometer_km=odometer,
            max_speed_kmh=self._max_speed,
            fuel_l=fuel,
            co2_kg=None if fuel is None else fuel * config.co2_kg_per_l,
            idle_s=self._idle_s,
            idle_fuel_l=idle_fuel,
            night_share=night_share(self.start, end, config),
            events=tuple(sorted(self.events, key=lambda event: event.start)),
            odometer_mismatch=mismatch,
        )
