"""Scoring configuration: vehicle classes, their default thresholds, and loading from TOML."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final, Literal, get_args

from ..errors import ConfigError

VehicleClass = Literal["car", "light_truck", "heavy_truck"]
FuelType = Literal["gasoline", "diesel"]

G: Final = 9.80665  # m/s^2 per g

#: kg CO2 per litre burned (Japan, 環境省 factors; see docs/scoring.md).
CO2_KG_PER_L: Final[dict[FuelType, float]] = {"gasoline": 2.32, "diesel": 2.58}

#: Per-class defaults: the fields of ScoringConfig that depend on the vehicle class.
CLASS_DEFAULTS: Final[dict[VehicleClass, dict[str, float]]] = {
    "car": {
        "harsh_braking_mps2": 3.5,
        "harsh_acceleration_mps2": 3.5,
        "harsh_cornering_mps2": 4.0,
        "max_speed_kmh": 100.0,
        "continuous_driving_limit_s": 2 * 3600.0,  # advisory for cars
    },
    "light_truck": {
        "harsh_braking_mps2": 3.2,
        "harsh_acceleration_mps2": 3.0,
        "harsh_cornering_mps2": 3.5,
        "max_speed_kmh": 100.0,
        "continuous_driving_limit_s": 4 * 3600.0,  # 改善基準告示 (2024)
    },
    "heavy_truck": {
        "harsh_braking_mps2": 3.0,
        "harsh_acceleration_mps2": 2.5,
        "harsh_cornering_mps2": 3.0,
        "max_speed_kmh": 80.0,
        "continuous_driving_limit_s": 4 * 3600.0,
    },
}

# Fields that may be zero or negative (everything else must be a positive finite number).
_SIGNED: Final = frozenset({"utc_offset_h", "night_start_h", "night_end_h", "hysteresis"})


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Every threshold the scorer uses; defaults are the issue's, per vehicle class.

    Build one with :meth:`for_class` (class defaults plus overrides) or
    :func:`load_scoring_config`; constructing it directly validates every field and raises
    ConfigError naming the field at fault.
    """

    vehicle_class: VehicleClass = "car"
    fuel_type: FuelType = "gasoline"
    # harsh driving (longitudinal and lateral acceleration, m/s^2)
    harsh_braking_mps2: float = 3.5
    harsh_acceleration_mps2: float = 3.5
    harsh_cornering_mps2: float = 4.0
    harsh_sustain_s: float = 0.3
    braking_min_speed_kmh: float = 10.0
    cornering_min_speed_kmh: float = 20.0
    smoothing_s: float = 0.3
    accel_from_speed_window_s: float = 1.0
    hysteresis: float = 0.17
    rearm_s: float = 2.0
    # speeding (km/h over the posted limit, or over max_speed_kmh when the bus has no limit)
    max_speed_kmh: float = 100.0
    speeding_minor_over_kmh: float = 10.0
    speeding_minor_s: float = 10.0
    speeding_major_over_kmh: float = 20.0
    speeding_major_s: float = 5.0
    speeding_critical_over_kmh: float = 40.0
    # idling and stops
    stationary_kmh: float = 1.0
    idle_min_s: float = 300.0
    trip_end_stationary_s: float = 300.0
    # continuous driving (改善基準告示)
    continuous_driving_limit_s: float = 2 * 3600.0
    break_min_s: float = 600.0
    break_total_s: float = 1800.0
    # pedal misapplication
    pedal_full_pct: float = 80.0
    pedal_released_pct: float = 10.0
    pedal_rise_s: float = 1.0
    pedal_low_speed_kmh: float = 10.0
    pedal_accel_mps2: float = 3.0
    pedal_overlap_pct: float = 10.0
    pedal_overlap_s: float = 1.0
    pedal_overlap_min_speed_kmh: float = 5.0
    # seatbelt
    seatbelt_s: float = 10.0
    seatbelt_min_speed_kmh: float = 10.0
    # crash
    crash_accel_mps2: float = 2.5 * G
    crash_speed_drop_kmh: float = 8.0
    crash_window_s: float = 0.15
    crash_rearm_s: float = 30.0
    # trip figures
    max_gap_s: float = 10.0
    odometer_tolerance: float = 0.05
    odometer_resolution_km: float = 0.1
    location_max_age_s: float = 10.0
    utc_offset_h: float = 9.0
    night_start_h: float = 22.0
    night_end_h: float = 5.0
    maf_air_fuel_ratio: float = 14.7
    fuel_density_g_per_l: float = 740.0

    def __post_init__(self) -> None:
        if self.vehicle_class not in CLASS_DEFAULTS:
            raise ConfigError(
                f"vehicle_class: {self.vehicle_class!r} is not one of {tuple(CLASS_DEFAULTS)}"
            )
        if self.fuel_type not in CO2_KG_PER_L:
            raise ConfigError(f"fuel_type: {self.fuel_type!r} is not one of {tuple(CO2_KG_PER_L)}")
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type != "float":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{field.name}: expected a number, got {value!r}")
            if not math.isfinite(value) or (field.name not in _SIGNED and value <= 0):
                raise ConfigError(f"{field.name}: expected a positive finite number, got {value!r}")
        if not 0 <= self.hysteresis < 1:
            raise ConfigError(f"hysteresis: expected 0 <= h < 1, got {self.hysteresis!r}")
        if self.speeding_major_over_kmh < self.speeding_minor_over_kmh:
            raise ConfigError("speeding_major_over_kmh must not be below speeding_minor_over_kmh")
        for name in ("night_start_h", "night_end_h"):
            if not 0 <= getattr(self, name) < 24:
                raise ConfigError(f"{name}: expected an hour 0 <= h < 24")

    @classmethod
    def for_class(cls, vehicle_class: str = "car", **overrides: object) -> ScoringConfig:
        """The defaults of ``vehicle_class`` with ``overrides`` applied (field name → value)."""
        if vehicle_class not in CLASS_DEFAULTS:
            raise ConfigError(
                f"vehicle_class: {vehicle_class!r} is not one of {tuple(CLASS_DEFAULTS)}"
            )
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown scoring setting(s): {', '.join(unknown)}")
        values: dict[str, object] = dict(CLASS_DEFAULTS[vehicle_class])
        values.update(overrides)
        values["vehicle_class"] = vehicle_class
        return dataclasses.replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def co2_kg_per_l(self) -> float:
        """CO2 emitted per litre of this vehicle's fuel."""
        return CO2_KG_PER_L[self.fuel_type]


def config_from_mapping(data: Mapping[str, object], source: str = "<mapping>") -> ScoringConfig:
    """Build a config from a TOML-like table; ConfigError messages name ``source`` and the key."""
    settings = dict(data)
    vehicle_class = settings.pop("vehicle_class", "car")
    if not isinstance(vehicle_class, str) or vehicle_class not in get_args(VehicleClass):
        raise ConfigError(
            f"{source}: vehicle_class: expected one of {get_args(VehicleClass)}, "
            f"got {vehicle_class!r}"
        )
    for key, value in settings.items():
        if isinstance(value, int) and not isinstance(value, bool):
            settings[key] = float(value)
    try:
        return ScoringConfig.for_class(vehicle_class, **settings)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_scoring_config(path: Path) -> ScoringConfig:
    """Read the ``[scoring]`` table of a TOML file (absent table: class ``car`` defaults).

    Raises ConfigError naming the file (and line, for TOML syntax errors) or the key.
    """
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scoring config: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    table = document.get("scoring", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [scoring] must be a table")
    return config_from_mapping(table, str(path))
