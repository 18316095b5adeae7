"""Releasing public statistics: each (cell, hour) once, after the grace period, only with at
least k distinct contributors, every value noised; then its contributions are deleted.

Run by ``msp-registry public release`` (from a timer, every few minutes: docs/public.md): it
closes every hour that ended more than the grace
period ago and has not been released yet, in one store transaction, so a contribution is
either in its hour's release or counted ``late`` (its hour is closed) — never both, never
lost silently. The publications go through the store's ``fanout`` table like the fleets'
copies, which the running registry publishes (QoS 1, retained on
``msp/v1/public/stats/{cell}``, one message per cell: its latest released hour).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from msp_protocol.records import format_ts
from msp_protocol.topics import public_stats_topic

from ..recipients.signing import RegistrySigner
from ..store import CellAggregate, Publication, PublicCounts, PublicRelease, Store
from .config import PublicConfig
from .noise import UNITS, Noise, OpenDpLaplace, scales

log = logging.getLogger(__name__)


def hour_text(at: datetime) -> str:
    """The wire form of the UTC hour ``at`` falls in (``2026-11-26T08:00:00Z``)."""
    start = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%dT%H:00:00Z")


def closing_before(now: datetime, config: PublicConfig) -> str:
    """The first hour not yet due at ``now``: an hour is due once it ended ``grace_s`` ago."""
    return hour_text(now - timedelta(seconds=config.grace_s))


def noised(aggregate: CellAggregate, config: PublicConfig, noise: Noise,
           released_at: str) -> PublicRelease:  # fmt: skip
    """The published form of one (cell, hour): each value noised in its integer unit with its
    share of ε (``noise``); the mean speed derived from the noised distance and time."""
    scale = scales(config.epsilon)
    exact = {"contributors": aggregate.contributors, "distance": aggregate.distance_km,
             "duration": aggregate.duration_s, "fuel": aggregate.fuel_l,
             "co2": aggregate.co2_kg}  # fmt: skip
    drawn = {name: noise(round(value * UNITS[name]), scale[name]) for name, value in exact.items()}
    distance_km = drawn["distance"] / UNITS["distance"]
    duration_s = drawn["duration"] / UNITS["duration"]
    speed = None
    if distance_km > 0 and duration_s > 0:
        speed = round(min(distance_km / duration_s * 3600.0, 500.0), 1)
    return PublicRelease(
        cell=aggregate.cell, hour=aggregate.hour, contributors=drawn["contributors"],
        distance_km=round(distance_km, 3), duration_s=round(duration_s, 1),
        mean_speed_kmh=speed, fuel_l=round(drawn["fuel"] / UNITS["fuel"], 3),
        co2_kg=round(drawn["co2"] / UNITS["co2"], 3), epsilon=config.epsilon, k=config.k,
        released_at=released_at,
    )  # fmt: skip


def payload(release: PublicRelease, signer: RegistrySigner | None = None) -> bytes:
    """The retained message of a released (cell, hour): its noised values, ε and k; nothing
    about any device, vehicle, person or session; with ``signer``, also ``registry_jws``, the
    registry's JWS over the other fields (its key is retained on ``msp/v1/registry/key``), so
    anyone can prove the statistics came from this registry."""
    value: dict[str, object] = {
        "cell": release.cell, "hour": release.hour, "contributors": release.contributors,
        "distance_km": release.distance_km, "duration_s": release.duration_s,
        "mean_speed_kmh": release.mean_speed_kmh, "fuel_l": release.fuel_l,
        "co2_kg": release.co2_kg, "epsilon": release.epsilon, "k": release.k,
        "released_at": release.released_at,
    }  # fmt: skip
    if signer is not None:
        value = signer.with_signature(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")


def release(store: Store, config: PublicConfig, now: datetime,
            noise: Noise | None = None) -> PublicCounts:  # fmt: skip
    """Release every hour due at ``now`` (an aware instant); returns what was released,
    suppressed (fewer than ``config.k`` distinct contributors) and dropped as late. Raises
    ``PublicError`` without OpenDP, ``StoreError`` if the database fails (nothing changes)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    draw = noise if noise is not None else OpenDpLaplace()
    released_at = format_ts(now.timestamp())
    signer = RegistrySigner(store)

    def decide(due: Sequence[CellAggregate]) -> tuple[list[PublicRelease], list[Publication]]:
        releases = [noised(a, config, draw, released_at) for a in due if a.contributors >= config.k]
        return releases, [Publication(public_stats_topic(r.cell), payload(r, signer),
                                      retain=True) for r in releases]  # fmt: skip

    before = closing_before(now, config)
    counts = store.public_release(before, decide)
    log.info("public statistics up to %s: %d (cell, hour)s released, %d suppressed (fewer "
             "than %d contributors), %d late contributions dropped", before, counts.released,
             counts.suppressed, config.k, counts.late)  # fmt: skip
    return counts
