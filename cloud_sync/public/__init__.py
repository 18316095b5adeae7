"""The public statistics tier (issue 14): k-anonymous, noised aggregates per H3 cell and hour.

``aggregation`` turns a verified ``stats`` record into per-(cell, hour) contributions under a
keyed tag, clamped per device (``BOUNDS``); the store adds them up; ``release`` publishes each
(cell, hour) once, after the grace period, with at least k distinct contributors and Laplace
noise from OpenDP (``noise``), then deletes the contributions; ``export`` writes what was
published as GeoJSON or CSV. docs/public.md has the figures and why.

PublicError (a RegistryError)   a setting out of its range (k below 5, ε not positive), or
                                OpenDP missing (install the ``registry`` extra)
"""

from .config import PublicConfig, PublicError

__all__ = ["PublicConfig", "PublicError"]
