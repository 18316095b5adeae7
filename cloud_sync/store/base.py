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
from typing import Final, Protocol

from msp_protocol.bodies import Consent, ConsentStatement
from msp_protocol.records import Record

#: The tables holding a person's own data (``person_id`` column), for export and erasure.
PERSON_TABLES: Final = ("sessions", "trips", "events", "dtcs", "emergencies")


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
class PersonStatement:
    """A verified card-signed grant or revocation (a ``consent`` record) of a person; ``id``
    is the base64url SHA-256 of the card's signature (one statement, one id)."""

    id: str
    person_id: str
    device: str
    seq: int
    statement: ConsentStatement
    received_at: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A record that passed every check, ready to commit; ``card`` is set for a verified
    ``session.start``, ``statement`` for a verified ``consent``."""

    record: Record
    jws: str
    hash: str
    card: CardIdentity | None = None
    statement: PersonStatement | None = None


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
class Exchange:
    """One sending of a person's data to a recipient, for the person's exchange log
    (``cloud_sync.exchange_log``). Any recipient role plugs in: fleets (record copies,
    ``score``), and guardians, insurers and responders with kinds of their own.

    ``record``: ``device/seq`` of the record carried or derived from (``None`` for none);
    ``categories``: the consent categories it flowed under (empty: pre-consented);
    ``data_time``: the instant of the data (wire form): a revocation signed at or before it
    withdraws it if it has not left yet; ``consent``: the reference of the consent that
    allowed it (``session:<id>``, ``consent:<statement id>``, ``pre-consented``).
    """

    person_id: str
    recipient: str
    kind: str
    record: str | None
    categories: tuple[str, ...]
    data_time: str
    consent: str


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    """An exchange as the log keeps it: when it was committed for sending and its status
    (``queued``, ``delivered``: the broker took it, ``withdrawn``: a revocation stopped it
    before it left)."""

    exchange: Exchange
    sent_at: str
    status: str


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
    #: a person's data: the exchange-log entry, written in the transaction that queues it
    exchange: Exchange | None = None


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
class SessionGrant:
    """A consent a person signed at a login: the session, when it started, the consent."""

    session: str
    started_at: str
    consent: Consent


@dataclass(frozen=True, slots=True)
class PersonRequest:
    """A card-signed request of a person the registry acted on (``id``: as a statement's)."""

    id: str
    person_id: str
    device: str
    action: str
    signed_at: str
    answered_at: str | None = None


@dataclass(frozen=True, slots=True)
class Succession:
    """A person moving to a new card: the old and new card keys (base64url SHA-256 of their
    SubjectPublicKeyInfo), the new certificate, and when the old card signed the move."""

    person_id: str
    old_key_sha256: str
    new_key_sha256: str
    new_certificate_sha256: str
    new_certificate_der: bytes
    signed_at: str


@dataclass(frozen=True, slots=True)
class VehicleRow:
    """A vehicle known to the registry and how many people drove it."""

    vin: str
    fleet: str
    vehicle_class: str | None
    devices: int
    persons: int


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """An accepted record as kept: its place in the chain, its JWS and when it arrived (the
    registry acks on commit, so ``received_at`` of the last one is the device's last ack)."""

    device: str
    seq: int
    kind: str
    ts: str
    session: str | None
    hash: str
    jws: str
    received_at: str

# -- public statistics (issue 14): the rows of cloud_sync.public ------------------------------
@dataclass(frozen=True, slots=True)
class Contribution:
    """What one device added to one (cell, hour), under its keyed tag (never its id), already
    clamped (``cloud_sync.public.aggregation``); fuel and CO2 not reported count as 0."""

    cell: str
    hour: str
    contributor: str
    distance_km: float
    duration_s: float
    fuel_l: float
    co2_kg: float


@dataclass(frozen=True, slots=True)
class CellAggregate:
    """The exact sums of one (cell, hour) about to be released, and its distinct contributors;
    never stored, never published: only its noised release is."""

    cell: str
    hour: str
    contributors: int
    distance_km: float
    duration_s: float
    fuel_l: float
    co2_kg: float


@dataclass(frozen=True, slots=True)
class PublicRelease:
    """A published (cell, hour): every value noised (``cloud_sync.public.noise``); the mean
    speed is noised distance over noised time (``None`` when either is not positive)."""

    cell: str
    hour: str
    contributors: int
    distance_km: float
    duration_s: float
    mean_speed_kmh: float | None
    fuel_l: float
    co2_kg: float
    epsilon: float
    k: int
    released_at: str


@dataclass(frozen=True, slots=True)
class PublicCounts:
    """What one release did: (cell, hour)s published, suppressed (fewer than k contributors)
    and contributions dropped as late (their hour was released already)."""

    released: int
    suppressed: int
    late: int


#: Decides, inside the release's transaction, what is published of the (cell, hour)s due.
PublicDecide = Callable[[Sequence[CellAggregate]],
                        tuple[Sequence[PublicRelease], Sequence[Publication]]]
# -- end of public statistics -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """A registered recipient of a role other than ``fleet`` (fleets stay in :class:`Fleet`;
    ``cloud_sync.recipients.directory`` joins both): ``public_key`` is a responder's X25519
    key (base64url raw) that gateways seal emergency profiles to; ``password_hash`` as a
    fleet's (kept in the secret files, never in the database)."""

    id: str
    role: str
    added_at: str
    public_key: str | None = None
    password_hash: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """A person's emergency profile for one responder, as the registry keeps it: ciphertext
    only (``sealed``), with the card-signed statement binding it (``statement``: its JSON),
    the card's signature and certificate hash; ``id`` is the statement id."""

    id: str
    person_id: str
    responder: str
    signed_at: str
    sealed: str
    statement: str
    card_signature: str
    card_certificate_sha256: str


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
        """Every stored JWS of a device, in seq order (for independent verification); the
        records of an erased person are not among them (``erased_records``)."""

    def quarantined(self, device_id: str | None = None) -> Sequence[Quarantined]:
        """Quarantined records (of every device, or of one), by device and seq."""

    def device_records(self, device_id: str, kinds: Sequence[str] | None = None,
                       *, last: int | None = None) -> Sequence[StoredRecord]:  # fmt: skip
        """A device's accepted records (of ``kinds`` only, if given) in seq order; with
        ``last``, only the ``last`` highest seqs of them (read-only views: ``cloud_sync.web``)."""

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

    # -- public statistics (issue 14) ---------------------------------------------------------
    def public_chain(self, device_id: str) -> Sequence[tuple[int, str]]:
        """``(seq, hash)`` of the device's ``stats`` records: their place in the chain, all that
        is kept of them once their contributions are taken (``cloud_sync.public.aggregation``)."""

    def public_closed_before(self) -> str | None:
        """The hour before which every hour is released (contributions for it are late)."""

    def public_release(self, before: str, decide: PublicDecide) -> PublicCounts:
        """In one transaction: close every hour before ``before``; hand the (cell, hour)s of
        the contributions of those hours to ``decide``; keep its releases and queue its
        publications; delete every contribution of those hours (and count late ones)."""

    def public_stats(self, since: str | None = None) -> Sequence[PublicRelease]:
        """Every published (cell, hour) (of ``since`` and later), by hour and cell."""

    def public_counters(self) -> Mapping[str, int]:
        """Totals of the public tier: ``released``, ``suppressed``, ``late``,
        ``contributions`` (cells taken from stats records) and ``refused`` (stats records
        whose body was refused: kept as their chain place only)."""

    # -- the person's own acts: consents, exchange log, requests (issue 14) ---------------
    def card_person(self, certificate_sha256: str) -> str | None:
        """The person a card certificate (by its base64url SHA-256) stands for, if known."""

    def session_started_at(self, session_id: str) -> str | None:
        """When a driver session started (its statement's ``started_at``), if known."""

    def session_grants(self, person_id: str, session_id: str | None = None
                       ) -> Sequence[SessionGrant]:  # fmt: skip
        """The consents a person signed at logins (of one session, if given), oldest first."""

    def person_by_key(self, key_sha256: str) -> str | None:
        """The person whose card key this is now (after any succession), if known."""

    def succeed(self, move: Succession) -> bool:
        """Move the person to a new card key in one transaction: the person keeps its id and
        everything it owns, its key becomes the new one, the new certificate is the person's,
        and the old key is refused from then on. False, doing nothing, if the old key was
        succeeded before."""

    def erased_records(self, device_id: str) -> Sequence[tuple[int, str]]:
        """``(seq, hash)`` of the device's records whose JWS was erased (``erase_person``):
        their place in the chain stays, their content is gone."""

    def key_succeeded(self, key_sha256: str) -> bool:
        """True once the card key was succeeded by a new card's (``card succeed``)."""

    def consent_statements(self, person_id: str) -> Sequence[PersonStatement]:
        """The person's card-signed grants and revocations, by signing time."""

    def apply_statement(self, statement: PersonStatement,
                        publications: Sequence[Publication] = ()) -> bool:  # fmt: skip
        """Keep a verified grant or revocation at once, in its own transaction, with
        ``publications`` (a revocation's withdrawals of retained messages); a revocation also
        drops every queued publication it covers (its exchange turns ``withdrawn``). Returns
        False, doing nothing, if the statement was applied before."""

    def exchanges(self, person_id: str) -> Sequence[ExchangeRow]:
        """The person's exchange log, oldest first."""

    def person_rows(self, person_id: str, table: str) -> Sequence[Mapping[str, object]]:
        """Every row of the person in ``table`` (``sessions``, ``trips``, ``events``,
        ``dtcs``, ``emergencies``) as column → value, for the person's export."""

    def erase_person(self, person_id: str,
                     publications: Sequence[Publication] = ()) -> Mapping[str, int]:  # fmt: skip
        """Delete the person's data but what the retention rule keeps (docs/consent.md):
        sessions, trips, events, trouble codes, emergencies, sealed emergency profiles and card
        certificates go, the
        JWS of the records of their sessions is blanked (hash and place in the chain stay);
        consent statements and the exchange log stay. Queues ``publications`` (withdrawals of
        retained messages) in the same transaction. Returns rows deleted per table."""

    def log_exchanges(self, exchanges: Sequence[Exchange], status: str) -> int:
        """Write the person's exchange-log rows for data that reached a recipient outside a
        publication (a dashboard page or API answer: ``status`` ``shown``), in one
        transaction; returns how many."""

    # -- recipients of every role, emergency profiles, the registry's key (issue 15) -------
    def add_recipient(self, recipient: Recipient) -> None:
        """Register a recipient (not a fleet), or replace its key and password hash."""

    def recipients(self) -> Sequence[Recipient]:
        """Every registered recipient of a role other than ``fleet``, by id."""

    def put_profile(self, profile: ProfileRow) -> bool:
        """Keep a person's sealed profile for a responder (the newest signed replaces an older
        one); False, doing nothing, if this statement was kept before or a newer one is."""

    def profile(self, person_id: str, responder: str) -> ProfileRow | None:
        """The person's sealed profile for ``responder``, if any."""

    def registry_key_pem(self) -> bytes:
        """The registry's own Ed25519 signing key (PKCS#8 PEM), made on first use, kept 0600
        in the secret files (``cloud_sync.secret_files``), never in the database."""

    def record_request(self, request: PersonRequest,
                       publications: Sequence[Publication] = ()) -> bool:  # fmt: skip
        """Note a request as answered with ``publications`` (its sealed reply), in one
        transaction; False, doing nothing, if it was answered before."""
