"""The registry store in PostgreSQL (psycopg 3), for many workers on one database.

The same tables and behaviour as ``cloud_sync.store.sqlite`` (layout in
``cloud_sync.store.postgres_schema``): every write through :meth:`PostgresStore.commit`, one
transaction per batch, records idempotent on ``(device, seq)``, quarantine, fleet copies
queued in the same transaction, the ``person_scores`` view, and no secret in the database
(the pseudonym key and fleet password hashes are files of ``cloud_sync.secret_files``, in the
directory the configuration names).

Many workers: a commit locks the rows of the batch's devices (``SELECT … FOR NO KEY UPDATE``,
in device order, so two commits never deadlock), then checks the batch against what is stored
(``cloud_sync.store.chain_check``) and raises ``cloud_sync.errors.ChainConflict`` if another
worker committed first; nothing of the batch is then committed.

psycopg is imported here only: the SQLite path never needs it (the ``postgres`` extra).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from msp_protocol import bodies
from msp_protocol.records import Record

from ..errors import ChainConflict, EnrolmentError, SchemaVersionError, StoreError
from ..public.aggregation import BOUNDS, contributions, contributor_key, is_stats
from ..secret_files import SecretFiles
from . import postgres_schema
from .base import (
    Accepted,
    Batch,
    CellAggregate,
    ChainHead,
    Device,
    Eviction,
    Fanned,
    Fanout,
    Fleet,
    Person,
    Publication,
    PublicCounts,
    PublicDecide,
    PublicRelease,
    Quarantined,
    SessionRow,
    StoredRecord,
    TripRow,
    VehicleRow,
    Withheld,
)
from .chain_check import Stored, by_device, plan_device, span
from .device_cache import DeviceCache
from .open import redact
from .postgres_person import PgPersonActs
from .postgres_recipients import PgRecipientRows
from .sqlite_schema import dumps

log = logging.getLogger(__name__)

_DEVICE_COLUMNS = ", ".join(Device.__dataclass_fields__)
_TRIP_FIELDS = tuple(bodies.Trip.__dataclass_fields__)
_COMMON = ("device", "seq", "session", "person_id", "vin")


def _insert_sql(table: str, columns: Sequence[str]) -> bytes:
    names = ", ".join(f'"{c}"' for c in columns)
    return (f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
            " ON CONFLICT DO NOTHING").encode()  # fmt: skip


_SQL = {
    "trips": _insert_sql("trips", (*_COMMON, *_TRIP_FIELDS)),
    "events": _insert_sql("events", (*_COMMON, "type", "start", "duration_s", "peak",
                                     "speed_kmh", "severity", "lat", "lon")),
    "dtcs": _insert_sql("dtcs", (*_COMMON, "ts", "code", "status", "mil", "odometer_km")),
    "emergencies": _insert_sql("emergencies", (*_COMMON, "detected_at", "trigger",
                                               "peak_decel_ms2", "speed_kmh", "lat", "lon")),
}  # fmt: skip

_TABLES = ("devices", "vehicles", "persons", "sessions", "records", "quarantine", "trips",
           "events", "dtcs", "emergencies", "evictions", "fanout", "fleets",
           "public_chain", "public_contributions", "public_stats")  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PostgresStore(PgPersonActs, PgRecipientRows):
    """A :class:`cloud_sync.store.Store` in a PostgreSQL database; many processes may use one
    database at once (see the module docstring)."""

    def __init__(self, url: str, secrets: Path, environ: Mapping[str, str] | None = None, *,
                 migrate: bool = False) -> None:  # fmt: skip
        """Connect to ``url`` and check its schema version: an empty database gets the current
        tables (and the pseudonym key is made in ``secrets``), an older one is migrated only
        with ``migrate`` (else ``SchemaVersionError``), a newer one is refused."""
        self.url = redact(url)
        self._dsn = url
        self.secret_files = SecretFiles(None, environ, directory=secrets)
        conn = self._connect()
        try:
            self.migrated_from = self._open_schema(conn, migrate)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"{self.url}: cannot open registry database: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._secret: bytes | None = None
        self._devices = DeviceCache()
        self._public_key: bytes | None = None  # contributor tags' key: cloud_sync.public
        self._applied_before: set[int] = set()  # ids of Accepted in the commit at hand

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(self._dsn, autocommit=True, connect_timeout=10,
                                   application_name="msp-registry")  # fmt: skip
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: cannot connect to the registry database: {exc}"
                             ) from None  # fmt: skip

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection, made again if the server dropped it (restarted, failed over): the
        call that saw it drop raised ``StoreError``; the caller's retry lands here."""
        if self._conn.broken:
            log.warning("%s: the connection was lost; connecting again", self.url)
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _open_schema(self, conn: psycopg.Connection[tuple[Any, ...]], migrate: bool) -> int:
        code = postgres_schema.SCHEMA_VERSION
        found = postgres_schema.version(conn)
        if found is None:
            raise StoreError(f"{self.url}: has tables but is not a registry database")
        if found > code or (found and found < code and not migrate):
            raise SchemaVersionError(self.url, found, code)
        if found < code:
            postgres_schema.migrate(conn)
        if found == 0:
            self.secret_files.create_pseudonym_key()
        return found

    @property
    def schema_version(self) -> int:
        """The database's schema version now."""
        return postgres_schema.version(self._live()) or 0

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._live().execute(sql.encode(), params).fetchall()
        except psycopg.Error as exc:  # a database failure, not the caller's input
            raise StoreError(f"{self.url}: {exc}") from None

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._live().execute(sql.encode(), params).rowcount
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: {exc}") from None

    # devices -----------------------------------------------------------------------------
    def device(self, device_id: str) -> Device | None:
        """The enrolled device, revoked or not; ``None`` if never enrolled. The key and
        certificate are read once per process; only ``revoked_at`` is read each time."""
        cached = self._devices.get(device_id)
        if cached is not None:
            row = self._one("SELECT revoked_at FROM devices WHERE id = %s", (device_id,))
            return self._devices.revocation(cached, row[0] if row else None)
        row = self._one(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = %s", (device_id,))  # noqa: S608
        return self._devices.put(Device(*row)) if row else None

    def enroll(self, device: Device) -> None:
        """Add a device and its vehicle; raises ``EnrolmentError`` if the id is taken."""
        try:
            with self._live().transaction():
                self._conn.execute(
                    b"INSERT INTO vehicles (vin, fleet) VALUES (%s, %s) ON CONFLICT (vin)"
                    b" DO UPDATE SET fleet = excluded.fleet",
                    (device.vin, device.fleet),
                )
                self._conn.execute(
                    f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES ({', '.join(['%s'] * 8)})"  # noqa: S608
                    .encode(),
                    [getattr(device, k) for k in Device.__dataclass_fields__],
                )
        except pg_errors.UniqueViolation:
            raise EnrolmentError(f"{device.id}: already enrolled (revoke it and use a new id)"
                                 ) from None  # fmt: skip
        except psycopg.Error as exc:
            raise StoreError(f"enrolling {device.id}: {exc}") from None

    def revoke(self, device_id: str, at: str) -> None:
        """Mark a device revoked; raises ``EnrolmentError`` if it is unknown."""
        changed = self._run(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, %s) WHERE id = %s",
            (at, device_id),
        )
        self._devices.forget(device_id)
        if changed == 0:
            raise EnrolmentError(f"{device_id}: no such device")

    def devices(self) -> Sequence[Device]:
        """Every enrolled device, by id."""
        return [Device(*r) for r in self._rows(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY id")]  # noqa: S608, E501

    # chain -------------------------------------------------------------------------------
    def chain_head(self, device_id: str) -> ChainHead:
        """Where the device's committed chain ends (seq 0, hash ``None`` before any record)."""
        row = self._one("SELECT seq, hash FROM chain WHERE device = %s", (device_id,))
        return ChainHead(int(row[0]), row[1]) if row else ChainHead(0, None)

    def record_hash(self, device_id: str, seq: int) -> str | None:
        """The stored chain hash of ``(device, seq)`` (accepted or quarantined)."""
        row = self._one(
            "SELECT hash FROM records WHERE device = %s AND seq = %s"
            " UNION ALL SELECT hash FROM quarantine WHERE device = %s AND seq = %s"
            " UNION ALL SELECT hash FROM public_chain WHERE device = %s AND seq = %s",
            (device_id, seq, device_id, seq, device_id, seq),
        )
        return str(row[0]) if row else None

    def quarantined(self, device_id: str | None = None) -> Sequence[Quarantined]:
        """Quarantined records (of every device, or of one), by device and seq."""
        rows = self._rows(
            "SELECT device, seq, hash, jws, reason, detail, received_at FROM quarantine"
            " WHERE %s::text IS NULL OR device = %s ORDER BY device, seq",
            (device_id, device_id),
        )
        return [Quarantined(d, int(s), h, j, r, t, at) for d, s, h, j, r, t, at in rows]

    def chain_records(self, device_id: str) -> Sequence[str]:
        """Every stored JWS of a device, in seq order (for independent verification), but the
        erased ones."""
        rows = self._rows("SELECT jws FROM records WHERE device = %s AND jws <> ''"
                          " ORDER BY seq", (device_id,))  # fmt: skip
        return [str(r[0]) for r in rows]

    def device_records(self, device_id: str, kinds: Sequence[str] | None = None,
                       *, last: int | None = None) -> Sequence[StoredRecord]:  # fmt: skip
        """A device's accepted records (of ``kinds`` only), in seq order; the ``last`` only."""
        rows = self._rows(
            "SELECT device, seq, kind, ts, session, hash, jws, received_at FROM records"
            " WHERE device = %s AND (%s::text[] IS NULL OR kind = ANY(%s::text[]))"
            " ORDER BY seq DESC LIMIT %s",
            (device_id, None if kinds is None else list(kinds),
             None if kinds is None else list(kinds), last),
        )  # fmt: skip
        return [StoredRecord(d, int(q), k, t, s, h, j, r) for d, q, k, t, s, h, j, r in rows[::-1]]

    def card_certificate(self, sha256: str) -> bytes | None:
        """The DER of a card certificate seen before, by its base64url SHA-256."""
        row = self._one("SELECT der FROM card_certificates WHERE sha256 = %s", (sha256,))
        return bytes(row[0]) if row else None

    def session_person(self, session_id: str) -> str | None:
        """The person of a driver session, ``None`` if the session is unknown."""
        row = self._one("SELECT person_id FROM sessions WHERE id = %s", (session_id,))
        return str(row[0]) if row else None

    def session_consents(self, session_id: str) -> Sequence[bodies.Consent]:
        """The consents the driver signed for a session (none if the session is unknown)."""
        row = self._one("SELECT consents FROM sessions WHERE id = %s", (session_id,))
        if row is None:
            return []
        return [bodies.Consent(c["recipient"], tuple(c["categories"]), c["until"])
                for c in json.loads(row[0])]  # fmt: skip

    def person_consents(self, person_id: str) -> Sequence[bodies.Consent]:
        """Every consent the person signed, in any session, oldest session first."""
        rows = self._rows(
            "SELECT consents FROM sessions WHERE person_id = %s ORDER BY started_at, id",
            (person_id,),
        )
        return [bodies.Consent(c["recipient"], tuple(c["categories"]), c["until"])
                for (text,) in rows for c in json.loads(text)]  # fmt: skip

    def add_fleet(self, fleet: Fleet) -> None:
        """Register a fleet operator, or replace its password hash (kept in the secret files,
        not the database)."""
        self.secret_files.set_fleet_password(fleet.id, fleet.password_hash)
        self._run("INSERT INTO fleets VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                  (fleet.id, fleet.added_at))  # fmt: skip

    def fleets(self) -> Sequence[Fleet]:
        """Every registered fleet operator, by id, with its password hash if it has one."""
        hashes = self.secret_files.fleet_passwords()
        return [Fleet(i, a, hashes.get(i))
                for i, a in self._rows("SELECT id, added_at FROM fleets ORDER BY id")]  # fmt: skip

    def withheld(self) -> Mapping[Withheld, int]:
        """How much data was withheld from fleets, by fleet, kind and reason."""
        rows = self._rows("SELECT fleet, kind, reason, count FROM withheld")
        return {Withheld(f, k, r): int(c) for f, k, r, c in rows}

    def clear_expired(self, now: str) -> int:
        """Queue an empty retained message for every retained publication expired at ``now``."""
        try:
            with self._live().transaction():
                deleted = self._conn.execute(
                    b"DELETE FROM retained WHERE expires <= %s RETURNING topic", (now,))
                topics = sorted(str(t) for (t,) in deleted)
                with self._conn.cursor() as cur:
                    cur.executemany(b"INSERT INTO fanout (topic, payload, retain)"
                                    b" VALUES (%s, '', TRUE)", [(t,) for t in topics])  # fmt: skip
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: cannot clear expired messages: {exc}") from None
        return len(topics)

    def pseudonym_secret(self) -> bytes:
        """The registry's secret for per-fleet pseudonyms (in its secret files); raises
        ``StoreError`` if it is missing."""
        if self._secret is None:
            self._secret = self.secret_files.pseudonym_key()
        return self._secret

    # writing -----------------------------------------------------------------------------
    def commit(self, batch: Batch, fanout: Fanout | None = None) -> None:
        """Commit the whole batch, and what ``fanout`` derives from its new records, in one
        transaction; records already stored stay as they are. Raises ``ChainConflict`` when
        another worker committed records of the batch's devices that it contradicts (nothing
        is committed; re-plan and retry), ``StoreError`` when the database fails."""
        try:
            with self._live().transaction():
                self._commit(batch, fanout)
        except ChainConflict:
            raise
        except (pg_errors.UniqueViolation, pg_errors.DeadlockDetected,
                pg_errors.SerializationFailure) as exc:  # fmt: skip
            # The checks run under the devices' locks, so this is a commit racing one that
            # did not lock (or a deadlock PostgreSQL broke): the caller re-plans the batch.
            raise ChainConflict("?", 0, f"concurrent commit: {exc}") from None
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: commit failed: {exc}") from None

    def _commit(self, batch: Batch, fanout: Fanout | None) -> None:
        run = self._conn.execute
        groups = by_device(batch.accepted, batch.quarantined, batch.evictions)
        if groups:
            run(b"SELECT id FROM devices WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                (list(groups),))  # fmt: skip
        new: set[int] = set()
        for device, (accepted, quarantined, evictions) in groups.items():
            stored = self._stored(device, *span(accepted, quarantined, evictions))
            plan = plan_device(device, accepted, quarantined, evictions, stored)
            for ev in plan.evictions:
                run(b"INSERT INTO evictions VALUES (%s, %s, %s, %s)",
                    (ev.device, ev.first, ev.last, ev.last_hash))  # fmt: skip
            for kept in plan.quarantined:
                if is_stats(kept.jws):  # its cells are never kept: its place only
                    run(b"INSERT INTO public_chain VALUES (%s, %s, %s)",
                        (kept.device, kept.seq, kept.hash))  # fmt: skip
                    self._count("refused", 1)
                    continue
                run(b"INSERT INTO quarantine VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (kept.device, kept.seq, kept.hash, kept.jws, kept.reason, kept.detail,
                     _now()))  # fmt: skip
            new.update(id(a) for a in plan.accepted)
        inserted = [acc for acc in batch.accepted if id(acc) in new]
        self._applied_before.clear()
        for acc in inserted:
            self._insert(acc)
        # a statement the early hook applied already fans out nothing again
        fresh = [a for a in inserted if id(a) not in self._applied_before]
        fanned = fanout(fresh) if fanout is not None and fresh else Fanned()
        self._queue((*batch.publications, *fanned.publications))
        with self._conn.cursor() as cur:
            withheld = sorted((w.fleet, w.kind, w.reason, n) for w, n in fanned.withheld.items())
            if withheld:
                cur.executemany(b"INSERT INTO withheld VALUES (%s, %s, %s, %s)"
                                b" ON CONFLICT (fleet, kind, reason)"
                                b" DO UPDATE SET count = withheld.count + excluded.count",
                                withheld)  # fmt: skip
        for device in groups:
            self._advance_head(device)
        for reason, count in sorted(batch.rejections.items()):
            run(b"INSERT INTO rejections VALUES (%s, %s) ON CONFLICT (reason)"
                b" DO UPDATE SET count = rejections.count + excluded.count",
                (reason, count))  # fmt: skip

    def _stored(self, device: str, lo: int, hi: int) -> Stored:
        rows = self._conn.execute(
            b"SELECT seq, hash FROM records WHERE device = %s AND seq BETWEEN %s AND %s"
            b" UNION ALL SELECT seq, hash FROM quarantine"
            b" WHERE device = %s AND seq BETWEEN %s AND %s"
            b" UNION ALL SELECT seq, hash FROM public_chain"  # stats records: chain places only
            b" WHERE device = %s AND seq BETWEEN %s AND %s",
            (device, lo, hi, device, lo, hi, device, lo, hi),
        ).fetchall()
        evictions = self._conn.execute(
            b"SELECT device, first, last, last_hash FROM evictions"
            b" WHERE device = %s AND first <= %s AND last >= %s",
            (device, hi, lo),
        ).fetchall()
        return Stored({int(s): str(h) for s, h in rows},
                      [Eviction(d, int(f), int(la), h) for d, f, la, h in evictions])  # fmt: skip

    def fanout_pending(self, limit: int) -> Sequence[tuple[int, Publication]]:
        """Committed publications not yet taken by the broker, oldest first, with their ids."""
        rows = self._rows("SELECT id, topic, payload, retain FROM fanout ORDER BY id LIMIT %s",
                          (limit,))  # fmt: skip
        return [(int(i), Publication(str(t), bytes(p), bool(r))) for i, t, p, r in rows]

    def fanout_done(self, ids: Sequence[int]) -> None:
        """Forget publications the broker has acknowledged (one transaction); their
        exchanges are delivered."""
        if not ids:
            return

        def act() -> None:
            self._conn.execute(b"DELETE FROM fanout WHERE id = ANY(%s)", (list(ids),))
            self._conn.execute(b"UPDATE exchange_log SET status = 'delivered'"
                               b" WHERE fanout_id = ANY(%s)", (list(ids),))  # fmt: skip

        self._transaction("forget published messages", act)

    def _advance_head(self, device: str) -> None:
        run = self._conn.execute
        row = run(b"SELECT seq, hash FROM chain WHERE device = %s", (device,)).fetchone()
        seq, hash_ = (int(row[0]), row[1]) if row else (0, None)
        while True:
            # every stored record after the head, in one read, until the first hole
            found = run(
                b"SELECT seq, hash FROM records WHERE device = %s AND seq > %s"
                b" UNION ALL SELECT seq, hash FROM quarantine WHERE device = %s AND seq > %s"
                b" UNION ALL SELECT seq, hash FROM public_chain WHERE device = %s AND seq > %s"
                b" ORDER BY seq LIMIT 10000",
                (device, seq, device, seq, device, seq),
            ).fetchall()
            moved = False
            for s, h in found:
                if int(s) != seq + 1:
                    break
                seq, hash_, moved = int(s), str(h), True
            ev = run(b"SELECT last, last_hash FROM evictions WHERE device = %s AND first = %s",
                     (device, seq + 1)).fetchone()  # fmt: skip
            if ev is not None:
                seq, hash_, moved = int(ev[0]), str(ev[1]), True
            if not moved:
                break
        run(b"INSERT INTO chain VALUES (%s, %s, %s) ON CONFLICT (device)"
            b" DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (device, seq, hash_))  # fmt: skip

    def _insert(self, acc: Accepted) -> None:
        rec = acc.record
        run = self._conn.execute
        if isinstance(rec.body, bodies.Stats):
            self._contribute(acc)
            return
        run(b"INSERT INTO records VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (rec.device, rec.seq, acc.hash, rec.kind, rec.ts, rec.session, acc.jws,
             _now()))  # fmt: skip
        body = rec.body
        if acc.statement is not None:
            if not self._apply_statement(acc.statement):
                self._applied_before.add(id(acc))
            return
        if isinstance(body, bodies.SessionStart) and acc.card is not None:
            self._session_start(rec, body, acc)
            return
        person = self.session_person(rec.session) if rec.session else None
        common = (rec.device, rec.seq, rec.session, person, rec.vin)
        if isinstance(body, bodies.SessionEnd) and rec.session:
            run(b"UPDATE sessions SET ended_at = %s, end_reason = %s WHERE id = %s",
                (body.ended_at, body.reason, rec.session))  # fmt: skip
        elif isinstance(body, bodies.Trip):
            values = [getattr(body, f) for f in _TRIP_FIELDS]
            values[_TRIP_FIELDS.index("events")] = dumps(dict(body.events))
            run(_SQL["trips"], (*common, *values))
        elif isinstance(body, bodies.Event):
            lat, lon = (body.location.lat, body.location.lon) if body.location else (None, None)
            run(_SQL["events"], (*common, body.type, body.start, body.duration_s, body.peak,
                                 body.speed_kmh, body.severity, lat, lon))  # fmt: skip
        elif isinstance(body, bodies.Dtc):
            for code in body.codes:
                run(_SQL["dtcs"], (*common, rec.ts, code.code, code.status, int(body.mil),
                                   body.odometer_km))  # fmt: skip
        elif isinstance(body, bodies.Emergency):
            lat, lon = (body.location.lat, body.location.lon) if body.location else (None, None)
            run(_SQL["emergencies"], (*common, body.detected_at, body.trigger,
                                      body.peak_decel_ms2, body.speed_kmh, lat, lon))  # fmt: skip

    def _session_start(self, rec: Record, body: bodies.SessionStart, acc: Accepted) -> None:
        card = acc.card
        assert card is not None
        st = body.statement
        run = self._conn.execute
        run(b"INSERT INTO persons VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (card.person_id, card.key_sha256, rec.ts))  # fmt: skip
        run(b"INSERT INTO card_certificates VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (card.certificate_sha256, card.person_id, card.certificate_der))  # fmt: skip
        consents = [
            {"recipient": c.recipient, "categories": list(c.categories), "until": c.until}
            for c in st.consents
        ]
        run(b"INSERT INTO sessions VALUES (%s, %s, %s, %s, %s, %s, NULL, NULL, %s, %s, %s)"
            b" ON CONFLICT DO NOTHING",
            (st.session, card.person_id, rec.device, st.vin, st.vehicle_class, st.started_at,
             st.licence.expiry, dumps(list(st.licence.categories)), dumps(consents)))  # fmt: skip
        run(b"UPDATE vehicles SET vehicle_class = %s WHERE vin = %s", (st.vehicle_class, st.vin))

    # reading -----------------------------------------------------------------------------
    def rejections(self) -> Mapping[str, int]:
        """Rejection counts by reason since the store was created."""
        return {str(r): int(c) for r, c in self._rows("SELECT reason, count FROM rejections")}

    def persons(self) -> Sequence[Person]:
        """Every person, by id."""
        return [Person(*r) for r in self._rows("SELECT id, key_sha256, first_seen FROM persons"
                                               " ORDER BY id")]  # fmt: skip

    def sessions(self, person_id: str | None = None) -> Sequence[SessionRow]:
        """Driver sessions (all, or one person's), by start time."""
        fields = ", ".join(SessionRow.__dataclass_fields__)
        rows = self._rows(
            f"SELECT {fields} FROM sessions WHERE %s::text IS NULL OR person_id = %s"  # noqa: S608
            " ORDER BY started_at, id",
            (person_id, person_id),
        )
        return [SessionRow(*r) for r in rows]

    def vehicles(self) -> Sequence[VehicleRow]:
        """Every vehicle, by VIN, with how many devices and persons it has seen."""
        rows = self._rows(
            "SELECT v.vin, v.fleet, v.vehicle_class,"
            " (SELECT count(*) FROM devices d WHERE d.vin = v.vin),"
            " (SELECT count(DISTINCT s.person_id) FROM sessions s WHERE s.vin = v.vin)"
            " FROM vehicles v ORDER BY v.vin"
        )
        return [VehicleRow(v, f, c, int(d), int(p)) for v, f, c, d, p in rows]

    def trips(self, person_id: str) -> Sequence[TripRow]:
        """The trips attributed to a person, in every vehicle, by end time."""
        rows = self._rows(
            'SELECT person_id, vin, "end", distance_km, penalty_points, score FROM trips'
            ' WHERE person_id = %s ORDER BY "end", device, seq',
            (person_id,),
        )
        return [TripRow(*r) for r in rows]

    def counts(self) -> Mapping[str, int]:
        """Row counts per table."""
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in _TABLES)  # noqa: S608
        return {str(t): int(n) for t, n in self._rows(sql)}

    # public statistics (issue 14; cloud_sync.public, docs/public.md) ------------------------
    def _contribute(self, acc: Accepted) -> None:
        """Keep a ``stats`` record's chain place and add its contributions under keyed tags;
        nothing else of it (JWS, body, ts, VIN) is stored (``chain_check`` left out any
        duplicate already)."""
        rec = acc.record
        run = self._conn.execute
        run(b"INSERT INTO public_chain VALUES (%s, %s, %s)", (rec.device, rec.seq, acc.hash))
        if self._public_key is None:
            self._public_key = contributor_key(self.pseudonym_secret())
        rows = contributions(rec, self._public_key)
        # FOR SHARE: a release (FOR UPDATE) cannot close the hour under this commit's feet
        found = run(b"SELECT value FROM public_state WHERE name = 'closed_before' FOR SHARE"
                    ).fetchone()  # fmt: skip
        closed = str(found[0]) if found and found[0] else None
        fresh = [c for c in rows if closed is None or c.hour >= closed]
        if fresh:
            with self._conn.cursor() as cur:
                cur.executemany(_ADD_CONTRIBUTION, [
                    (c.cell, c.hour, c.contributor, c.distance_km, c.duration_s, c.fuel_l,
                     c.co2_kg) for c in sorted(fresh, key=lambda c: c.contributor)])  # fmt: skip
        self._count("contributions", len(rows))
        if len(rows) > len(fresh):
            self._count("late", len(rows) - len(fresh))
            log.info("%d public contribution(s) for hours already released: dropped",
                     len(rows) - len(fresh))  # fmt: skip

    def _count(self, name: str, n: int) -> None:
        self._conn.execute(b"INSERT INTO public_counters VALUES (%s, %s) ON CONFLICT (name)"
                           b" DO UPDATE SET count = public_counters.count + excluded.count",
                           (name, n))  # fmt: skip

    def public_chain(self, device_id: str) -> Sequence[tuple[int, str]]:
        """``(seq, hash)`` of the device's ``stats`` records, by seq."""
        return [(int(q), str(h)) for q, h in self._rows(
            "SELECT seq, hash FROM public_chain WHERE device = %s ORDER BY seq", (device_id,))]

    def public_closed_before(self) -> str | None:
        """The hour before which every hour is released; None before the first release."""
        row = self._one("SELECT value FROM public_state WHERE name = 'closed_before'")
        return str(row[0]) if row and row[0] else None

    def public_release(self, before: str, decide: PublicDecide) -> PublicCounts:
        """Release every hour before ``before`` (see ``Store.public_release``), holding the
        ``closed_before`` row (``FOR UPDATE``) against ingest's ``FOR SHARE``."""
        try:
            with self._live().transaction():
                run = self._conn.execute
                row = run(b"SELECT value FROM public_state WHERE name = 'closed_before'"
                          b" FOR UPDATE").fetchone()  # fmt: skip
                old = str(row[0]) if row and row[0] else None
                until = before if old is None or before > old else old
                late = 0
                if old is not None:
                    found = run(b"SELECT count(*) FROM public_contributions WHERE hour < %s",
                                (old,)).fetchone()  # fmt: skip
                    late = int(found[0]) if found else 0
                due = [CellAggregate(str(c), str(h), int(n), *map(float, sums))
                       for c, h, n, *sums in run(_DUE, (until, old, old))]  # fmt: skip
                releases, publications = decide(due)
                with self._conn.cursor() as cur:
                    if releases:
                        cur.executemany(
                            b"INSERT INTO public_stats VALUES"
                            b" (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            [(r.cell, r.hour, r.contributors, r.distance_km, r.duration_s,
                              r.mean_speed_kmh, r.fuel_l, r.co2_kg, r.epsilon, r.k,
                              r.released_at) for r in releases])  # fmt: skip
                    if publications:
                        cur.executemany(b"INSERT INTO fanout (topic, payload, retain)"
                                        b" VALUES (%s, %s, %s)",
                                        [(p.topic, p.payload, p.retain) for p in publications])
                run(b"DELETE FROM public_contributions WHERE hour < %s", (until,))
                run(b"UPDATE public_state SET value = %s WHERE name = 'closed_before'", (until,))
                counts = PublicCounts(len(releases), len(due) - len(releases), late)
                for name, n in (("released", counts.released), ("suppressed", counts.suppressed),
                                ("late", late)):  # fmt: skip
                    if n:
                        self._count(name, n)
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: public release failed: {exc}") from None
        return counts

    def public_stats(self, since: str | None = None) -> Sequence[PublicRelease]:
        """Every published (cell, hour) (of ``since`` and later), by hour and cell."""
        rows = self._rows(
            "SELECT cell, hour, contributors, distance_km, duration_s, mean_speed_kmh, fuel_l,"
            " co2_kg, epsilon, k, released_at FROM public_stats"
            " WHERE %s::text IS NULL OR hour >= %s ORDER BY hour, cell", (since, since))
        return [PublicRelease(c, h, int(n), float(d), float(t), None if m is None else float(m),
                              float(f), float(o), float(e), int(k), str(at))
                for c, h, n, d, t, m, f, o, e, k, at in rows]  # fmt: skip

    def public_counters(self) -> Mapping[str, int]:
        """Totals of the public tier (released, suppressed, late, contributions)."""
        return {str(n): int(c) for n, c in self._rows("SELECT name, count FROM public_counters")}


#: Adds a device's contribution to a (cell, hour), its sum clamped to the bound.
_ADD_CONTRIBUTION = "".join((
    "INSERT INTO public_contributions VALUES (%s, %s, %s, %s, %s, %s, %s)",
    " ON CONFLICT (cell, hour, contributor) DO UPDATE SET",
    *(f"{',' if i else ''} {name} = least(public_contributions.{name} + excluded.{name},"
      f" {bound!r})"
      for i, (name, bound) in enumerate((("distance_km", BOUNDS.distance_km),
                                         ("duration_s", BOUNDS.duration_s),
                                         ("fuel_l", BOUNDS.fuel_l), ("co2_kg", BOUNDS.co2_kg)))),
)).encode()  # fmt: skip
#: The (cell, hour)s due for release: hours before the new mark and not before the old one.
_DUE = (b"SELECT cell, hour, count(*), sum(distance_km), sum(duration_s), sum(fuel_l),"
        b" sum(co2_kg) FROM public_contributions WHERE hour < %s"
        b" AND (%s::text IS NULL OR hour >= %s) GROUP BY hour, cell ORDER BY hour, cell")
