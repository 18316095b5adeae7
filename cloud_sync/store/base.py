"""The registry's store interface and the rows it exchanges with the ingest pipeline.

The pipeline (``cloud_sync.ingest``) decides what is valid; a store only keeps it. A store
commits a whole :class:`Batch` atomically or not at all, inserts records idempotently on
``(device, seq)``, and never keeps a rejected record: rejections are counters by reason. The
one exception is a quarantined record (``cloud_sync.quarantine``): signed and chained, its body
refused, it is kept aside with its reason and takes its place in the chain.
``cloud_sync.store.sqlite.SqliteStore`` is the default implementation,
``cloud_sync.store.postgres.PostgresStore`` the one for many workers; both run the same contract
tests (``tests/cloud_sync/store/``), and ``cloud_sync.store.open.open_store`` opens either from a
``--db`` URL. A commit checks the batch against the stored chain and raises
``cloud_sync.errors.ChainConflict`` when another worker committed first
(``cloud_sync.store.chain_check``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from msp_protocol.bodies import Consent
from msp_protocol.records import Record


@dataclass(frozen=True, slots=True)
class Device:
    """An enrolled gateway: the vehicle it sits in, its fleet and its record-signing key."""

    id: str
    vin: str
    fleet: str
    public_key_pem: str
    alg: str
    certificate_pem: str
    enrolled_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        """True once ``msp-registry revoke`` was run for this device."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The highest seq of a device below which every record is committed (or declared evicted),
    and the chain hash of that record (``None`` for an evicted one)."""

    seq: int
    hash: str | None


@dataclass(frozen=True, slots=True)
class Person:
    """A person: known by a pseudonym derived from their card key, never by a serial number."""

    id: str
    key_sha256: str
    first_seen: str


@dataclass(frozen=True, slots=True)
class CardIdentity:
    """A verified card certificate: the person it stands for and the DER to keep for later."""

    person_id: str
    key_sha256: str
    certificate_sha256: str
    certificate_der: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    """A record that passed every check, ready to commit; ``card`` is set for a verified
    ``session.start``."""

    record: Record
    jws: str
    hash: str
    card: CardIdentity | None = None


@dataclass(frozen=True, slots=True)
class Eviction:
    """Seqs ``first``..``last`` of a device that its outbox evicted unsent (from a ``gap``
    record); ``last_hash`` lets the record after them chain on."""

    device: str
    first: int
    last: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A signed, chained record whose body the registry refuses (``cloud_sync.quarantine``):
    kept with its JWS and reason, it advances the chain but is never used or republished.
    ``received_at`` is set on what a store returns."""

    device: str
    seq: int
    hash: str
    jws: str
    reason: str
    detail: str
    received_at: str | None = None


@dataclass(frozen=True, slots=True)
class Publication:
    """One message for fleets or the public, kept until the broker has taken it (QoS 1);
    ``retain``: the broker keeps the last one per topic for later subscribers."""

    topic: str
    payload: bytes
    retain: bool = False
    #: for a retained message: the instant (wire form) after which the broker must forget it
    #: (the consent it was published under ends); the store then clears it
    expires: str | None = None


@dataclass(frozen=True, slots=True)
class Withheld:
    """What a counter of withheld data counts: records of ``kind`` (or only their location)
    that did not reach ``fleet``, and why (``not_consented``, ``expired``,
    ``unverified_session``, ``location``)."""

    fleet: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Fanned:
    """What committed records fan out to: the messages, and the counts of what was withheld."""

    publications: Sequence[Publication] = ()
    withheld: Mapping[Withheld, int] = field(default_factory=dict)


#: Computes, inside the commit's transaction, what the committed records fan out to.
Fanout = Callable[[Sequence[Accepted]], Fanned]


@dataclass(frozen=True, slots=True)
class Batch:
    """What one transaction commits: accepted records, declared evictions, rejections,
    publications of the registry's own (device keys for fleets) and quarantined records."""

    accepted: Sequence[Accepted] = ()
    evictions: Sequence[Eviction] = ()
    rejections: Mapping[str, int] = field(default_factory=dict)
    publications: Sequence[Publication] = ()
    quarantined: Sequence[Quarantined] = ()


@dataclass(frozen=True, slots=True)
class Fleet:
    """A fleet operator the registry issued credentials to; ``password_hash`` (mosquitto's
    ``$7$`` form) when it logs in with a user name and password instead of a certificate."""

    id: str
    added_at: str
    password_hash: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One N:N binding of a person to a vehicle: a driver session."""

    id: str
    person_id: str
    device: str
    vin: str
    vehicle_class: str
    started_at: str
    ended_at: str | None
    end_reason: str | None


@dataclass(frozen=True, slots=True)
class TripRow:
    """A trip as the person score needs it: when it ended, how far, how many points."""

    person_id: str | None
    vin: str
    end: str
    distance_km: float
    penalty_points: float
    score: float | None


@dataclass(frozen=True, slots=True)
class VehicleRow:
    """A vehicle known to the registry and how many people drove it."""

    vin: str
    fleet: str
    vehicle_class: str | None
    devices: int
    persons: int


class Store(Protocol):
    """What the registry keeps; every write goes through :meth:`commit`."""

    def device(self, device_id: str) -> Device | None:
        """The enrolled device, revoked or not; ``None`` if never enrolled."""

    def enroll(self, device: Device) -> None:
        """Add a device; raises ``EnrolmentError`` if the id is already enrolled."""

    def revoke(self, device_id: str, at: str) -> None:
        """Mark a device revoked; raises ``EnrolmentError`` if it is unknown."""

    def devices(self) -> Sequence[Device]:
        """Every enrolled device, by id."""

    def chain_head(self, device_id: str) -> ChainHead:
        """Where the device's committed chain ends (seq 0, hash ``None`` before any record)."""

    def record_hash(self, device_id: str, seq: int) -> str | None:
        """The stored chain hash of ``(device, seq)`` (accepted or quarantined), ``None`` if
        not stored."""

    def chain_records(self, device_id: str) -> Sequence[str]:
        """Every stored JWS of a device, in seq order (for independent verification)."""

    def quarantined(self, device_id: str | None = None) -> Sequence[Quarantined]:
        """Quarantined records (of every device, or of one), by device and seq."""

    def card_certificate(self, sha256: str) -> bytes | None:
        """The DER of a card certificate seen before, by its base64url SHA-256."""

    def session_person(self, session_id: str) -> str | None:
        """The person of a driver session, ``None`` if the session is unknown."""

    def session_consents(self, session_id: str) -> Sequence[Consent]:
        """The consents the driver signed for a session (none if the session is unknown)."""

    def person_consents(self, person_id: str) -> Sequence[Consent]:
        """Every consent the person signed, in any session, oldest session first."""

    def pseudonym_secret(self) -> bytes:
        """The registry's secret for per-fleet pseudonyms (made once, kept beside the store,
        never in it: ``cloud_sync.secret_files``)."""

    def add_fleet(self, fleet: Fleet) -> None:
        """Register a fleet operator, or replace its password hash if already registered."""

    def fleets(self) -> Sequence[Fleet]:
        """Every registered fleet operator, by id."""

    def withheld(self) -> Mapping[Withheld, int]:
        """How much data was withheld from fleets, by fleet, kind and reason."""

    def clear_expired(self, now: str) -> int:
        """Queue an empty retained message (which makes the broker forget the topic) for every
        retained publication whose ``expires`` is before ``now``; returns how many."""

    def commit(self, batch: Batch, fanout: Fanout | None = None) -> None:
        """Commit the whole batch atomically; records already stored are left as they are.
        ``fanout`` runs inside the transaction (it sees the batch's sessions and persons);
        its publications are committed with the records, so none is lost to a crash."""

    def fanout_pending(self, limit: int) -> Sequence[tuple[int, Publication]]:
        """Committed publications not yet taken by the broker, oldest first, with their ids."""

    def fanout_done(self, ids: Sequence[int]) -> None:
        """Forget publications the broker has acknowledged."""

    def rejections(self) -> Mapping[str, int]:
        """Rejection counts by reason since the store was created."""

    def persons(self) -> Sequence[Person]:
        """Every person, by id."""

    def sessions(self, person_id: str | None = None) -> Sequence[SessionRow]:
        """Driver sessions (all, or one person's), by start time."""

    def vehicles(self) -> Sequence[VehicleRow]:
        """Every vehicle, by VIN."""

    def trips(self, person_id: str) -> Sequence[TripRow]:
        """The trips attributed to a person, in every vehicle, by end time."""

    def counts(self) -> Mapping[str, int]:
        """Row counts per table (records, persons, sessions, trips, events, ...)."""

    def close(self) -> None:
        """Close the database (the store is unusable afterwards)."""
