"""One frozen dataclass per record kind's body; field names are the JSON keys of the schema.

Timestamps are kept as the ISO 8601 UTC strings of the wire (``2026-11-26T10:15:30.123Z``) so a
parsed record re-serialises to exactly the bytes that were signed; ``records.format_ts`` makes
them. Counts keyed by name (``Trip.events``, ``Health.errors``) are read-only mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A WGS84 position in degrees."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Licence:
    """The driving-licence check read from the card: expiry date and licence categories."""

    expiry: str
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Consent:
    """Data ``categories`` the driver lets ``recipient`` receive, ``until`` an instant."""

    recipient: str
    categories: tuple[str, ...]
    until: str


@dataclass(frozen=True, slots=True)
class Statement:
    """The binding statement the driver's card signs: who drives which vehicle, with consents."""

    session: str
    vin: str
    device: str
    started_at: str
    nonce: str
    vehicle_class: str
    licence: Licence
    consents: tuple[Consent, ...]


@dataclass(frozen=True, slots=True)
class SessionStart:
    """``session.start``: the statement, the card's signature over its canonical JSON, and the
    card certificate (base64 DER; ``None`` when the registry already has it by its SHA-256)."""

    statement: Statement
    card_signature: str
    card_certificate: str | None
    card_certificate_sha256: str


@dataclass(frozen=True, slots=True)
class SessionTotals:
    """What a driver session added up to."""

    trips: int
    distance_km: float
    duration_s: float
    events: int


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """``session.end``: why the session ended.

    ``reason``: card_removed, ignition_off, timeout, logout (another card logged in), agent_stop.
    """

    reason: str
    ended_at: str
    totals: SessionTotals


@dataclass(frozen=True, slots=True)
class Trip:
    """``trip``: one ignition-on to ignition-off drive and its score."""

    start: str
    end: str
    distance_km: float
    odometer_km: float | None
    duration_s: float
    max_speed_kmh: float
    fuel_l: float | None
    co2_kg: float | None
    idle_s: float
    night_share: float
    events: Mapping[str, int]
    penalty_points: float
    score: float | None


@dataclass(frozen=True, slots=True)
class Event:
    """``event``: one driving event (harsh_braking, speeding, ...) with its peak and severity."""

    type: str
    start: str
    duration_s: float
    peak: float
    speed_kmh: float
    severity: str
    location: Location | None


@dataclass(frozen=True, slots=True)
class TroubleCode:
    """One diagnostic trouble code (``P0301``) and whether it is stored, pending or permanent."""

    code: str
    status: str


@dataclass(frozen=True, slots=True)
class Dtc:
    """``dtc``: the trouble codes read from the vehicle, the MIL state and the odometer."""

    codes: tuple[TroubleCode, ...]
    mil: bool
    odometer_km: float | None


@dataclass(frozen=True, slots=True)
class Emergency:
    """``emergency``: a crash, from the bus's crash flag or a deceleration threshold."""

    detected_at: str
    trigger: str
    peak_decel_ms2: float
    speed_kmh: float
    location: Location | None


# -- public statistics (issue 14, the ``public`` tier) ----------------------------------------
@dataclass(frozen=True, slots=True)
class CellStats:
    """What one trip drove in one H3 cell (resolution 7) within the record's hour: distance,
    time, mean speed (distance / time), fuel and CO2 (``None`` when the vehicle reports no fuel
    rate). A contribution to public statistics: it names no person, vehicle or session."""

    cell: str
    distance_km: float
    duration_s: float
    mean_speed_kmh: float
    fuel_l: float | None
    co2_kg: float | None


@dataclass(frozen=True, slots=True)
class Stats:
    """``stats``: one trip's contributions to public statistics for one UTC ``hour`` (the
    instant the hour starts, ``2026-11-26T08:00:00Z``), one entry per H3 cell; sent with no
    session id, only with the driver's ``public`` consent (``msp_protocol.consent``)."""

    hour: str
    cells: tuple[CellStats, ...]


# -- end of public statistics -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Health:
    """``health``: agent health; ``evicted`` and ``refused`` count since the last health record."""

    uptime_s: float
    queue_depth: int
    queue_bytes: int
    frames_per_s: float
    errors: Mapping[str, int]
    evicted: int
    refused: int


@dataclass(frozen=True, slots=True)
class EvictedRange:
    """Seqs ``first``..``last`` evicted unsent; ``last_sha256`` is the hash of seq ``last``'s JWS,
    so the next record's ``prev`` still checks; ``kinds`` counts the evicted records by kind
    (empty when they are unknown: lost). A lost range may end at a seq that was reserved but
    never signed; its ``last_sha256`` is then the ``prev`` of the gap record right after it."""

    first: int
    last: int
    last_sha256: str
    kinds: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Gap:
    """``gap``: a marker in the chain naming records the outbox gave up, and why.

    ``reason``: ``size_bound`` (evicted unsent), ``outbox_lost`` (the file was lost or an
    older copy took its place), ``damaged`` (rows of the file could not be read).
    """

    reason: str
    ranges: tuple[EvictedRange, ...]


# -- the person's own acts: card-signed consents and requests (issue 14) ---------------------


@dataclass(frozen=True, slots=True)
class ConsentStatement:
    """What the card signs to grant or revoke a consent after login.

    ``action``: ``grant`` (``categories`` for ``recipient`` until ``until``) or ``revoke``
    (``categories`` of every consent to ``recipient``; empty: all of them; ``until`` null),
    effective from ``signed_at``. ``device``/``vin`` name the gateway it was signed at.
    """

    action: str
    recipient: str
    categories: tuple[str, ...]
    until: str | None
    device: str
    vin: str
    signed_at: str
    nonce: str


@dataclass(frozen=True, slots=True)
class CardConsent:
    """``consent``: a card-signed grant or revocation: the statement, the card's signature over
    its RFC 8785 form (base64) and the SHA-256 of the card certificate the registry knows."""

    statement: ConsentStatement
    card_signature: str
    card_certificate_sha256: str


@dataclass(frozen=True, slots=True)
class RequestStatement:
    """What the card signs to ask the registry about the person's own data.

    ``action``: ``my_data`` (consents, exchange log, scores), ``export`` (all data),
    ``erase``, or ``succeed`` (move the person to the card of ``successor_certificate``).
    ``reply_key``: base64url raw X25519 public key the answer is sealed to (HPKE), or null.
    """

    action: str
    device: str
    vin: str
    signed_at: str
    nonce: str
    reply_key: str | None
    successor_certificate: str | None


@dataclass(frozen=True, slots=True)
class CardRequest:
    """``request``: a card-signed request of the person for their own data; for ``succeed``
    also the new card's signature over the same statement (it proves the new key is there)."""

    statement: RequestStatement
    card_signature: str
    card_certificate_sha256: str
    successor_signature: str | None


@dataclass(frozen=True, slots=True)
class ProfileStatement:
    """What the card signs to deposit an emergency profile for one responder: it binds the
    sealed profile (``sealed_sha256``: base64url SHA-256 of the ``sealed`` text) to the person
    (the card), the responder and the gateway it was signed at."""

    responder: str
    device: str
    vin: str
    signed_at: str
    nonce: str
    sealed_sha256: str


@dataclass(frozen=True, slots=True)
class CardProfile:
    """``profile``: a person's emergency profile sealed to one responder's X25519 key (HPKE
    base mode, ``msp_protocol.sealed.seal_profile``: the registry holds only ciphertext) and
    the card's signature over the statement binding it."""

    statement: ProfileStatement
    sealed: str
    card_signature: str
    card_certificate_sha256: str


#: Any record body.
Body = (
    SessionStart | SessionEnd | Trip | Event | Dtc | Emergency | Stats | Health | Gap
    | CardConsent | CardRequest | CardProfile
)
