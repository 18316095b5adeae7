"""What was published, as GeoJSON (one hexagon per (cell, hour)) or CSV, for anyone."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Final

import h3

from ..store import PublicRelease

#: The CSV columns, in order: the released values of each (cell, hour).
COLUMNS: Final = ("cell", "hour", "contributors", "distance_km", "duration_s", "mean_speed_kmh",
                  "fuel_l", "co2_kg", "epsilon", "k", "released_at")  # fmt: skip


def _row(r: PublicRelease) -> dict[str, Any]:
    return {name: getattr(r, name) for name in COLUMNS}


def to_csv(rows: Sequence[PublicRelease]) -> str:
    """One line per released (cell, hour), with a header; an empty mean speed is null."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(_row(r))
    return out.getvalue()


def to_geojson(rows: Sequence[PublicRelease]) -> str:
    """A GeoJSON FeatureCollection (RFC 7946): each released (cell, hour) as its cell's
    hexagon, counter-clockwise, ``[lon, lat]``, with the released values as properties."""
    features = []
    for r in rows:
        ring = [[round(lng, 6), round(lat, 6)] for lat, lng in h3.cell_to_boundary(r.cell)]
        ring.append(ring[0])  # h3 gives it counter-clockwise, as RFC 7946 wants; closed here
        features.append({"type": "Feature", "id": f"{r.cell}/{r.hour}",
                         "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": _row(r)})  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=1) + "\n"
