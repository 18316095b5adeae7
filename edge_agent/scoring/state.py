"""The vehicle as scoring sees it: latest value of each signal, checked, with derived motion."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from .. import signals as sig
from ..samples import Sample, Value
from .config import ScoringConfig
from .model import Location
from .smoothing import Drop, MovingAverage, Slope

#: Plausible range of each numeric signal (DESIGN.md, "Plausibility"); a sample outside it is
#: rejected as "implausible". Decoders check the same table first; samples from elsewhere
#: (OBD, tests, future sources) are checked here again.
RANGES: Final[dict[str, tuple[float, float]]] = {
    name: spec.plausible for name, spec in sig.CANONICAL.items() if spec.plausible is not None
}
_BOOLS: Final = frozenset(name for name, spec in sig.CANONICAL.items() if spec.kind == "bool")

#: Engine speed below which the engine counts as off (cranking and noise).
ENGINE_RUNNING_RPM: Final = 100.0


def check_sample(sample: Sample, last_timestamp: float | None) -> str | None:
    """Why ``sample`` must be rejected (a short reason), or None when it is usable.

    ``last_timestamp`` is that signal's previous accepted timestamp: signals must each run
    forward in time (different signals may interleave with small jitter).
    """
    if not math.isfinite(sample.timestamp):
        return "bad_timestamp"
    if last_timestamp is not None and sample.timestamp < last_timestamp:
        return "out_of_order"
    value = sample.value
    if sample.name in _BOOLS:
        return None if isinstance(value, bool | int | float) and not _is_nan(value) else "bad_value"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "bad_value"
    if not math.isfinite(value):
        return "bad_value"
    low, high = RANGES.get(sample.name, (-math.inf, math.inf))
    if not low <= value <= high:
        return "implausible"
    return None


def maf_fuel_lph(maf_gps: float | None, config: ScoringConfig) -> float | None:
    """Gasoline flow in l/h from mass air flow: MAF·3600 / (AFR·density); None for diesel.

    The estimate assumes stoichiometric combustion, which diesels do not run at.
    """
    if maf_gps is None or config.fuel_type != "gasoline":
        return None
    return maf_gps * 3600.0 / (config.maf_air_fuel_ratio * config.fuel_density_g_per_l)


def _is_nan(value: float | bool) -> bool:
    return isinstance(value, float) and math.isnan(value)


class VehicleState:
    """Latest value of every signal scoring reads, plus smoothed and derived accelerations.

    ``accel_lon`` is the smoothed longitudinal acceleration (m/s², + forward), taken from
    ``Vehicle.Acceleration.Longitudinal`` when the bus carries it, else the slope of speed
    over ``accel_from_speed_window_s``. ``accel_lat`` likewise from the lateral signal or
    yaw rate * speed. ``None`` means "not known yet". ``stopped`` is kept up to date as the
    samples arrive: neither moving nor with the engine known to run.
    """

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.speed: float | None = None
        self.speed_limit: float | None = None
        self.accel_lon: float | None = None
        self.accel_lat: float | None = None
        self.raw_lon = 0.0
        self.raw_lat = 0.0
        self.speed_drop = 0.0  # km/h fallen within crash_window_s
        self.accel_pedal: float | None = None
        self.brake_pedal: float | None = None
        self.gear: float | None = None
        self.rpm: float | None = None
        self.belted: bool | None = None
        self.ignition: bool | None = None
        self.crash_flag = False
        self.odometer: float | None = None
        self.fuel_rate: float | None = None
        self.maf: float | None = None
        self.has_lon_signal = False
        self.has_lat_signal = False
        self.stopped = True
        self._stationary_kmh = config.stationary_kmh
        self._position: tuple[float, float | None, float | None] = (-math.inf, None, None)
        self._located: Location | None = None  # the Location of _position, built once
        self._lon_filter = MovingAverage(config.smoothing_s)
        self._lat_filter = MovingAverage(config.smoothing_s)
        self._speed_slope = Slope(config.accel_from_speed_window_s)
        self._speed_drop = Drop(config.crash_window_s)
        self._appliers: dict[str, Callable[[float, Value], None]] = {
            sig.SPEED: self._speed,
            sig.ACCEL_LON: self._accel_lon,
            sig.ACCEL_LAT: self._accel_lat,
            sig.YAW_RATE: self._yaw_rate,
            sig.LATITUDE: self._latitude,
            sig.LONGITUDE: self._longitude,
            sig.SPEED_LIMIT: self._speed_limit,
            sig.ACCEL_PEDAL: self._accel_pedal,
            sig.BRAKE_PEDAL: self._brake_pedal,
            sig.GEAR: self._gear,
            sig.ENGINE_SPEED: self._rpm,
            sig.FUEL_RATE: self._fuel_rate,
            sig.MAF: self._maf,
            sig.BELTED: self._belted,
            sig.IGNITION: self._ignition,
            sig.CRASH: self._crash,
        }

    def applier(self, name: str) -> Callable[[float, Value], None]:
        """What takes in a checked ``name`` sample as ``(timestamp, value)``.

        Built once per signal, so the scorer's dispatch table calls it without looking at
        the name again; a signal scoring does not read gets one that does nothing.
        """
        return self._appliers.get(name, _ignore)

    def apply(self, sample: Sample) -> None:
        """Take in one checked sample (see :func:`check_sample`)."""
        self.applier(sample.name)(sample.timestamp, sample.value)

    def _speed(self, ts: float, value: Value) -> None:
        number = abs(float(value))  # some buses sign the speed in reverse
        self.speed = number
        self.speed_drop = self._speed_drop.push(ts, number)
        slope = self._speed_slope.push(ts, number)
        if not self.has_lon_signal and slope is not None:
            self.accel_lon = slope / 3.6
        self._update_stopped()

    def _accel_lon(self, ts: float, value: Value) -> None:
        number = float(value)
        self.has_lon_signal = True
        self.raw_lon = number
        self.accel_lon = self._lon_filter.push(ts, number)

    def _accel_lat(self, ts: float, value: Value) -> None:
        number = float(value)
        self.has_lat_signal = True
        self.raw_lat = number
        self.accel_lat = self._lat_filter.push(ts, number)

    def _yaw_rate(self, ts: float, value: Value) -> None:
        if not self.has_lat_signal and self.speed is not None:
            centripetal = math.radians(float(value)) * self.speed / 3.6
            self.accel_lat = self._lat_filter.push(ts, centripetal)

    def _latitude(self, ts: float, value: Value) -> None:
        self._position = (ts, float(value), self._position[2])
        self._located = None

    def _longitude(self, ts: float, value: Value) -> None:
        self._position = (ts, self._position[1], float(value))
        self._located = None

    def _speed_limit(self, ts: float, value: Value) -> None:
        number = float(value)
        self.speed_limit = abs(number) if number else None  # 0: "no limit known" on most buses

    def _accel_pedal(self, ts: float, value: Value) -> None:
        self.accel_pedal = min(max(float(value), 0.0), 100.0)  # sensors overshoot by a few %

    def _brake_pedal(self, ts: float, value: Value) -> None:
        self.brake_pedal = min(max(float(value), 0.0), 100.0)

    def _gear(self, ts: float, value: Value) -> None:
        self.gear = float(value)

    def _rpm(self, ts: float, value: Value) -> None:
        self.rpm = float(value)
        self._update_stopped()

    def _fuel_rate(self, ts: float, value: Value) -> None:
        self.fuel_rate = float(value)

    def _maf(self, ts: float, value: Value) -> None:
        self.maf = float(value)

    def _belted(self, ts: float, value: Value) -> None:
        self.belted = bool(value)

    def _ignition(self, ts: float, value: Value) -> None:
        self.ignition = bool(value)
        self._update_stopped()

    def _crash(self, ts: float, value: Value) -> None:
        self.crash_flag = bool(value)

    def _update_stopped(self) -> None:
        self.stopped = not self.moving and self.engine_running is not True

    @property
    def moving(self) -> bool:
        """Whether the last known speed is at or above the stationary threshold."""
        return self.speed is not None and self.speed >= self._stationary_kmh

    @property
    def engine_running(self) -> bool | None:
        """Engine state from engine speed, else from ignition; None when neither is known."""
        if self.rpm is not None:
            return self.rpm >= ENGINE_RUNNING_RPM
        return self.ignition

    @property
    def idling(self) -> bool:
        """Stationary with the engine running."""
        return self.speed is not None and not self.moving and self.engine_running is True

    @property
    def fuel_rate_lph(self) -> float | None:
        """Fuel flow in l/h: the fuel-rate signal, else (gasoline only) estimated from MAF."""
        if self.fuel_rate is not None:
            return self.fuel_rate
        return maf_fuel_lph(self.maf, self.config)

    @property
    def reversing(self) -> bool:
        """Whether reverse gear is engaged."""
        return self.gear is not None and self.gear < 0

    def location(self, timestamp: float) -> Location | None:
        """Last position if it is fresh (``location_max_age_s``), else None."""
        ts, lat, lon = self._position
        if lat is None or lon is None or timestamp - ts > self.config.location_max_age_s:
            return None
        located = self._located
        if located is None:
            located = self._located = Location(lat, lon)
        return located

    def forget_motion(self) -> None:
        """Drop filter history (a gap in the data must not join two manoeuvres)."""
        for filt in (self._lon_filter, self._lat_filter, self._speed_slope, self._speed_drop):
            filt.reset()
        self.speed_drop = 0.0


def _ignore(timestamp: float, value: Value) -> None:
    """The applier of a signal scoring does not keep (the steering angle, the odometer)."""
