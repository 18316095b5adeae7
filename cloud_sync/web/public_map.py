"""The public statistics map: the published (cell, hour)s of ``cloud_sync.public`` drawn as
an SVG of H3 hexagons (``h3.cell_to_boundary``), coloured by CO2 or mean speed, for one hour.

Public statistics name no person or vehicle and anyone may read them (the broker's ``public``
user, docs/public.md), so the map and its API need no credential. No tiles, no script: the
hexagons are projected (equirectangular, scaled by the cosine of the mean latitude) into the
SVG's box on the server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import h3

from ..store import PublicRelease, Store
from .html import e

WIDTH, HEIGHT, PAD = 640.0, 420.0, 12.0
#: A colour scale (viridis at six stops), low to high.
STOPS = ((68, 1, 84), (65, 68, 135), (42, 120, 142), (34, 168, 132), (122, 209, 81),
         (253, 231, 37))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cell:
    """One published (cell, hour) as the map draws it."""

    cell: str
    hour: str
    co2_kg: float
    mean_speed_kmh: float | None
    distance_km: float
    contributors: int


def cells(store: Store, hour: str | None = None) -> tuple[list[str], list[Cell]]:
    """Every published hour, and the cells of ``hour`` (default: the latest)."""
    rows: Sequence[PublicRelease] = store.public_stats()
    hours = sorted({r.hour for r in rows})
    chosen = hour if hour is not None else (hours[-1] if hours else None)
    found = [Cell(r.cell, r.hour, r.co2_kg, r.mean_speed_kmh, r.distance_km, r.contributors)
             for r in rows if r.hour == chosen]  # fmt: skip
    return hours, found


def colour(value: float | None, low: float, high: float) -> str:
    """The scale's colour of ``value`` between ``low`` and ``high`` (grey for none)."""
    if value is None:
        return "#bbbbbb"
    t = 0.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    pos = t * (len(STOPS) - 1)
    i = min(int(pos), len(STOPS) - 2)
    f = pos - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(STOPS[i], STOPS[i + 1], strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def spread(values: Sequence[float]) -> tuple[float, float]:
    """The colour scale's ends: the 5th and 95th percentiles, never below 0 (the values are
    noised: a few land far out or below zero, and would wash out every other cell)."""
    if not values:
        return 0.0, 0.0
    ordered = sorted(max(0.0, v) for v in values)
    last = len(ordered) - 1
    return ordered[round(0.05 * last)], ordered[round(0.95 * last)]


def svg(found: Sequence[Cell], measure: str) -> str:
    """The map of ``found`` coloured by ``measure`` (``co2_kg`` or ``mean_speed_kmh``)."""
    if not found:
        return '<p class="empty">no published cell for this hour</p>'
    shapes = {c.cell: h3.cell_to_boundary(c.cell) for c in found}
    lats = [lat for ring in shapes.values() for lat, _ in ring]
    lngs = [lng for ring in shapes.values() for _, lng in ring]
    scale_x = math.cos(math.radians(sum(lats) / len(lats)))
    width = max((max(lngs) - min(lngs)) * scale_x, 1e-9)
    height = max(max(lats) - min(lats), 1e-9)
    k = min((WIDTH - 2 * PAD) / width, (HEIGHT - 2 * PAD) / height)
    low, high = spread([v for c in found if (v := getattr(c, measure)) is not None])
    x0 = (WIDTH - 2 * PAD - width * k) / 2  # centred
    polygons = []
    for c in found:
        points = " ".join(f"{PAD + x0 + (lng - min(lngs)) * scale_x * k:.1f},"
                          f"{PAD + (max(lats) - lat) * k:.1f}" for lat, lng in shapes[c.cell])
        value = getattr(c, measure)
        label = f"{c.cell}: {'—' if value is None else f'{value:.2f}'}"
        polygons.append(f'<polygon points="{points}" fill="{colour(value, low, high)}">'
                        f"<title>{e(label)}</title></polygon>")
    steps = "".join(f'<rect x="{i * 20}" y="0" width="20" height="10" '
                    f'fill="{colour(low + (high - low) * i / 5, low, high)}"/>' for i in range(6))
    return (f'<svg class="map" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" role="img" '
            f'aria-label="{e(measure)} per cell">{"".join(polygons)}</svg>'
            f'<p class="legend">{e(f"{low:.2f}")} <svg width="120" height="10" '
            f'viewBox="0 0 120 10">{steps}</svg> {e(f"{high:.2f}")}</p>')
