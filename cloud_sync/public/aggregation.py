"""From a verified ``stats`` record to contributions that name no device, clamped per device.

A ``stats`` record's envelope (device, VIN, seq, ts) serves only to verify it: ingest checks
its signature and its place in the device's chain as for every record, and then the store
keeps of it only its chain place (device, seq, hash: ``public_chain``), so the chain and the
gateway's ack go on, never its JWS, its body or its ``ts``. Its cells become contributions
keyed by (cell, hour, contributor), where the contributor is a keyed hash of the device, the
cell and the hour (``contributor_tag``): the same vehicle in the same (cell, hour) always has
the same tag, so it is counted once and its sum clamped, but two cells or two hours of one
vehicle cannot be linked by their tags, and without the registry's secret (kept outside the
database: ``cloud_sync.secret_files``) no tag can be traced to a device. The tags are deleted
with the contributions when their hour is released.

Each device's sum per (cell, hour) is clamped to ``BOUNDS`` (as it is added, so several trips
of one vehicle in one hour still add at most the bound): that bound is what one vehicle can
change a published sum by, the sensitivity the noise is scaled to (``noise``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from msp_protocol.bodies import Stats
from msp_protocol.jws import b64url
from msp_protocol.records import Record

from ..store.base import Contribution


@dataclass(frozen=True, slots=True)
class Bounds:
    """The most one device adds to one (cell, hour), per value."""

    distance_km: float
    duration_s: float
    fuel_l: float
    co2_kg: float


#: Per device and (cell, hour): 5 km (a res-7 cell is about 2.6 km across: a crossing is 1-3 km,
#: driving around in it for a while more), 15 min (a crossing takes a few minutes; longer is a
#: jam or circling, and is still shown as slow), 1 l of fuel and 2.5 kg of CO2 (a car burns
#: 0.3-0.5 l in 5 km; 1 l of petrol is 2.32 kg of CO2, of diesel 2.58). docs/public.md.
BOUNDS: Final = Bounds(distance_km=5.0, duration_s=900.0, fuel_l=1.0, co2_kg=2.5)

_KEY_LABEL: Final = b"msp public contributor v1"


def contributor_key(secret: bytes) -> bytes:
    """The key of the contributor tags, derived from the registry's secret (never stored)."""
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


def contributor_tag(key: bytes, device: str, cell: str, hour: str) -> str:
    """The tag one device contributes to one (cell, hour) under: stable for that triple,
    unlinkable across cells and hours, not traceable to the device without ``key``."""
    mac = hmac.new(key, f"{device}\x00{cell}\x00{hour}".encode(), hashlib.sha256).digest()
    return b64url(mac)[:22]


def contributions(record: Record, key: bytes) -> list[Contribution]:
    """The contributions of a verified ``stats`` record, each clamped to ``BOUNDS``; fuel and
    CO2 a vehicle does not report count as 0. Raises ``TypeError`` for another kind."""
    body = record.body
    if not isinstance(body, Stats):
        raise TypeError(f"a {record.kind} record makes no contribution")
    merged: dict[str, list[float]] = {}
    for c in body.cells:  # one cell listed twice in a record adds up, still under one tag
        values = merged.setdefault(c.cell, [0.0, 0.0, 0.0, 0.0])
        values[0] += c.distance_km
        values[1] += c.duration_s
        values[2] += c.fuel_l or 0.0
        values[3] += c.co2_kg or 0.0
    return [clamp(Contribution(cell, body.hour, contributor_tag(key, record.device, cell,
                                                                body.hour), *values))
            for cell, values in sorted(merged.items())]  # fmt: skip


def clamp(c: Contribution) -> Contribution:
    """``c`` with each value clamped to ``[0, BOUNDS]``."""
    b = BOUNDS
    return Contribution(c.cell, c.hour, c.contributor,
                        min(max(c.distance_km, 0.0), b.distance_km),
                        min(max(c.duration_s, 0.0), b.duration_s),
                        min(max(c.fuel_l, 0.0), b.fuel_l),
                        min(max(c.co2_kg, 0.0), b.co2_kg))  # fmt: skip
