"""Laplace noise from OpenDP, and how the privacy budget of one release is split.

Each published (cell, hour) carries five noised values: the number of distinct contributors
(one device adds at most 1) and the sums of distance, time, fuel and CO2 (one device adds at
most ``aggregation.BOUNDS``). Each gets the share ``EPSILON_SHARES`` of the release's ε and
Laplace noise of scale sensitivity / (ε · share), which makes it ε·share-differentially
private; together, by sequential composition, the (cell, hour) is ε-differentially private
with respect to one vehicle's contribution to it. The mean speed is the noised distance over
the noised time: post-processing, it spends nothing.

The noise is OpenDP's discrete Laplace mechanism (``make_laplace`` over integers) applied to
integer units (metres, seconds, millilitres, grams), so no floating-point artefact of
sampling can leak the exact value; OpenDP draws from the operating system's CSPRNG and cannot
be seeded. Values are published as drawn (a small sum may come out negative): clamping at 0
would bias every sum upwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from .aggregation import BOUNDS
from .config import PublicError

#: The share of a release's ε each published value spends (they add up to 1).
EPSILON_SHARES: Final[dict[str, float]] = {
    "contributors": 0.2, "distance": 0.2, "duration": 0.2, "fuel": 0.2, "co2": 0.2,
}  # fmt: skip
#: Integer units the noise is drawn in, per published value (per km, s, l, kg).
UNITS: Final[dict[str, float]] = {
    "contributors": 1.0, "distance": 1000.0, "duration": 1.0, "fuel": 1000.0, "co2": 1000.0,
}  # fmt: skip
#: What one device can change each value by, in its integer unit (the sensitivity).
SENSITIVITY: Final[dict[str, float]] = {
    "contributors": 1.0,
    "distance": BOUNDS.distance_km * UNITS["distance"],
    "duration": BOUNDS.duration_s * UNITS["duration"],
    "fuel": BOUNDS.fuel_l * UNITS["fuel"],
    "co2": BOUNDS.co2_kg * UNITS["co2"],
}

#: Adds noise of ``scale`` to an integer value.
Noise = Callable[[int, float], int]


def scales(epsilon: float) -> dict[str, float]:
    """The Laplace scale of each published value (in its integer unit) for a release of
    ``epsilon``."""
    return {name: SENSITIVITY[name] / (epsilon * share) for name, share in EPSILON_SHARES.items()}


class OpenDpLaplace:
    """OpenDP's discrete Laplace mechanism, one measurement per scale (built once)."""

    def __init__(self) -> None:
        try:
            import opendp.prelude as dp  # noqa: PLC0415 - only the release needs it
        except ImportError as exc:
            raise PublicError("the public statistics need OpenDP: install the registry extra "
                              "(pip install 'msp-gateway[registry]')") from exc  # fmt: skip
        dp.enable_features("contrib")
        self._dp = dp
        self._made: dict[float, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, value: int, scale: float) -> int:
        """``value`` plus a draw of discrete Laplace noise of ``scale``."""
        with self._lock:
            measure = self._made.get(scale)
            if measure is None:
                dp = self._dp
                measure = self._made[scale] = dp.m.make_laplace(
                    dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
        return int(measure(int(value)))
