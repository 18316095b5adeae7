"""Unit conversion from what a DBC or PID delivers to the canonical unit of a signal."""

from __future__ import annotations

import math

from .errors import ConfigError
from .samples import Value

# unit -> (dimension, factor to the dimension's canonical unit)
_UNITS: dict[str, tuple[str, float]] = {
    "km/h": ("speed", 1.0),
    "m/s": ("speed", 3.6),
    "mph": ("speed", 1.609344),
    "m/s^2": ("acceleration", 1.0),
    "g": ("acceleration", 9.80665),
    "deg/s": ("angular_rate", 1.0),
    "rad/s": ("angular_rate", 180.0 / math.pi),
    "deg": ("angle", 1.0),
    "rad": ("angle", 180.0 / math.pi),
    "%": ("fraction", 1.0),
    "ratio": ("fraction", 100.0),
    "rpm": ("rotation", 1.0),
    "l/h": ("volume_flow", 1.0),
    "g/s": ("mass_flow", 1.0),
    "km": ("distance", 1.0),
    "m": ("distance", 0.001),
    "mi": ("distance", 1.609344),
    "bool": ("bool", 1.0),
    "1": ("count", 1.0),
}

UNITS: frozenset[str] = frozenset(_UNITS)


def dimension(unit: str) -> str:
    """Return the physical dimension of ``unit``; raise ConfigError for a unit we do not know."""
    try:
        return _UNITS[unit][0]
    except KeyError:
        known = ", ".join(sorted(_UNITS))
        raise ConfigError(f"unknown unit {unit!r} (known: {known})") from None


def factor(source: str, target: str) -> float:
    """Return the multiplier that turns a value in ``source`` into ``target``.

    Raises ConfigError when either unit is unknown or the two measure different things.
    """
    src_dim, dst_dim = dimension(source), dimension(target)
    if src_dim != dst_dim:
        raise ConfigError(
            f"unit {source!r} ({src_dim}) cannot be converted to {target!r} ({dst_dim})"
        )
    return _UNITS[source][1] / _UNITS[target][1]


def convert(value: float, source: str, target: str) -> Value:
    """Convert ``value`` from ``source`` to ``target`` unit; ``bool`` yields a bool (non-zero)."""
    if target == "bool":
        factor(source, target)
        return value != 0
    return value * factor(source, target)
