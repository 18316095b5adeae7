"""The API's answers as pydantic models (they make the OpenAPI document's schemas)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from . import views


class ErrorOut(BaseModel):
    """A refusal: 401 (no or a wrong credential), 403 (not yours), 404 (no such thing)."""

    detail: str


class MeOut(BaseModel):
    """The logged-in recipient."""

    user: str
    role: str
    name: str


class CopyOut(BaseModel):
    """A record as the fleet received it on MQTT (``body`` without what it may not see;
    ``redacted`` names what was removed)."""

    kind: str
    device: str
    vin: str
    seq: int
    ts: str
    person: str | None = Field(description="the fleet's pseudonym of the driver, if any")
    body: dict[str, Any]
    received_at: str
    redacted: list[str]

    @classmethod
    def of(cls, copy: views.Copy) -> CopyOut:
        """The model of a view's copy (never its internal person id)."""
        return cls(kind=copy.kind, device=copy.device, vin=copy.vin, seq=copy.seq, ts=copy.ts,
                   person=copy.person, body=copy.body, received_at=copy.received_at,
                   redacted=list(copy.redacted))  # fmt: skip


class VehicleOut(BaseModel):
    """A vehicle of the fleet."""

    vin: str
    vehicle_class: str | None
    devices: list[str]
    last_seen: str | None
    last_trip: CopyOut | None

    @classmethod
    def of(cls, v: views.Vehicle) -> VehicleOut:
        """The model of a view's vehicle."""
        return cls(vin=v.vin, vehicle_class=v.vehicle_class, devices=list(v.devices),
                   last_seen=v.last_seen,
                   last_trip=CopyOut.of(v.last_trip) if v.last_trip else None)  # fmt: skip


class VehicleDetailOut(BaseModel):
    """A vehicle with its trips, events and trouble codes (oldest first)."""

    vehicle: VehicleOut
    trips: list[CopyOut]
    events: list[CopyOut]
    dtcs: list[CopyOut]


class ScorePointOut(BaseModel):
    """A score the fleet was sent after a trip."""

    at: str
    score: float | None


class DriverOut(BaseModel):
    """A driver by the fleet's pseudonym; ``score`` only under a valid ``score`` consent."""

    pseudonym: str
    score: float | None
    trend: float | None
    until: str | None
    trips: int
    history: list[ScorePointOut]

    @classmethod
    def of(cls, d: views.Driver) -> DriverOut:
        """The model of a view's driver (never the internal person id)."""
        return cls(pseudonym=d.pseudonym, score=d.score, trend=d.trend, until=d.until,
                   trips=d.trips,
                   history=[ScorePointOut(at=p.at, score=p.score) for p in d.history])  # fmt: skip


class DriverDetailOut(BaseModel):
    """A driver and their trips in this fleet's vehicles."""

    driver: DriverOut
    trips: list[CopyOut]


class GatewayOut(BaseModel):
    """A gateway's latest health record and last ack (the operator's view)."""

    device: str
    vin: str
    fleet: str
    revoked_at: str | None
    health_at: str | None
    queue_depth: int | None
    frames_per_s: float | None
    errors: dict[str, int]
    last_ack: str | None
    last_ack_age_s: float | None

    @classmethod
    def of(cls, g: views.Gateway) -> GatewayOut:
        """The model of a view's gateway."""
        return cls(device=g.device, vin=g.vin, fleet=g.fleet, revoked_at=g.revoked_at,
                   health_at=g.health_at, queue_depth=g.queue_depth,
                   frames_per_s=g.frames_per_s, errors=g.errors, last_ack=g.last_ack,
                   last_ack_age_s=g.last_ack_age_s)  # fmt: skip


class OperatorOut(BaseModel):
    """The operator's page as data."""

    gateways: list[GatewayOut]
    rejections: dict[str, int]


class PublicCellOut(BaseModel):
    """A published (cell, hour): noised sums, k-anonymous (docs/public.md)."""

    cell: str
    hour: str
    co2_kg: float
    mean_speed_kmh: float | None
    distance_km: float
    contributors: int


class PublicOut(BaseModel):
    """Every published hour, and the cells of the one asked for (default the latest)."""

    hours: list[str]
    cells: list[PublicCellOut]
