"""The registry store in one SQLite file (WAL) through sqlite-utils, readable by any SQLite tool.

Plain tables with plain columns (JSON, as UTF-8 text, only for small maps) and declared
foreign keys, so a fleet analyst can open the file in Datasette or the sqlite3 shell: devices,
vehicles, persons, card_certificates, sessions (the N:N person ↔ vehicle bindings), trips,
events, dtcs, emergencies, records (the signed JWS of everything accepted, the chain),
quarantine, evictions, chain heads, rejection counts, and the ``person_scores`` view
(``cloud_sync.store.sqlite_schema``). No secret is kept in it (``cloud_sync.secret_files``), and a
new database file is created readable by its owner only (0600).

Several processes may share the file: a commit holds SQLite's write lock (``BEGIN IMMEDIATE``)
and checks the batch against the stored chain inside it (``cloud_sync.store.chain_check``),
raising ``cloud_sync.errors.ChainConflict`` if another process committed first.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from msp_protocol import bodies
from msp_protocol.records import Record

from ..errors import ChainConflict, EnrolmentError, StoreError
from ..public.aggregation import BOUNDS, contributions, contributor_key, is_stats
from ..secret_files import SecretFiles
from . import sqlite_schema
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
from .sqlite_person import PersonActs, now_text
from .sqlite_recipients import RecipientRows
from .sqlite_schema import as_text, dumps

log = logging.getLogger(__name__)

_DEVICE_COLUMNS = ", ".join(Device.__dataclass_fields__)


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608


_TRIP_FIELDS = tuple(bodies.Trip.__dataclass_fields__)
_COMMON = ("device", "seq", "session", "person_id", "vin")
_SQL = {
    "trips": _insert_sql("trips", (*_COMMON, *_TRIP_FIELDS)),
    "events": _insert_sql("events", (*_COMMON, "type", "start", "duration_s", "peak",
                                     "speed_kmh", "severity", "lat", "lon")),
    "dtcs": _insert_sql("dtcs", (*_COMMON, "ts", "code", "status", "mil", "odometer_km")),
    "emergencies": _insert_sql("emergencies", (*_COMMON, "detected_at", "trigger",
                                               "peak_decel_ms2", "speed_kmh", "lat", "lon")),
}  # fmt: skip


_now = now_text


class SqliteStore(PersonActs, RecipientRows):
    """A :class:`cloud_sync.store.Store` in one SQLite file; safe for one writer process."""

    def __init__(self, path: Path, environ: Mapping[str, str] | None = None, *,
                 migrate: bool = True, secrets: Path | None = None) -> None:  # fmt: skip
        """Open (or create, 0600, with its pseudonym key) the database at ``path``, migrating
        an older layout unless ``migrate`` is false (then ``SchemaVersionError``); a newer one
        is refused. ``environ`` is where ``$CREDENTIALS_DIRECTORY`` is looked up; ``secrets``
        the secret files' directory (default: ``registry.secrets`` beside ``path``)."""
        self.secret_files = SecretFiles(path, environ, directory=secrets)
        self.migrated_from = sqlite_schema.SCHEMA_VERSION
        try:
            new = _create_private(path)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open registry database: {exc}") from exc
        try:
            self._db = sqlite_utils.Database(conn)
            self._db.enable_wal()
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            if new or sqlite_schema.is_empty(conn):
                sqlite_schema.create(conn)
                self.secret_files.create_pseudonym_key()
                self.migrated_from = 0
            else:
                self.migrated_from = sqlite_schema.version(conn)
                if sqlite_schema.migrate(conn, self.secret_files, str(path), apply=migrate):
                    _make_private(path)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path}: cannot open registry database: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._applied_before: set[int] = set()  # ids of Accepted in the commit at hand
        self._secret: bytes | None = None
        self._public_key: bytes | None = None  # contributor tags' key: cloud_sync.public
        self._devices = DeviceCache()
        self.path = path

    @property
    def schema_version(self) -> int:
        """The database's schema version now."""
        return sqlite_schema.version(self._conn)

    def close(self) -> None:
        """Close the database file."""
        self._conn.close()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:  # a database failure, not the caller's input
            raise StoreError(f"{self.path}: {exc}") from exc

    # devices -----------------------------------------------------------------------------
    def device(self, device_id: str) -> Device | None:
        """The enrolled device, revoked or not; ``None`` if never enrolled. The key and
        certificate are read once per process; only ``revoked_at`` is read each time."""
        cached = self._devices.get(device_id)
        if cached is not None:
            row = self._one("SELECT revoked_at FROM devices WHERE id = ?", (device_id,))
            return self._devices.revocation(cached, row[0] if row else None)
        row = self._one(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = ?", (device_id,))  # noqa: S608
        return self._devices.put(Device(*row)) if row else None

    def enroll(self, device: Device) -> None:
        """Add a device and its vehicle; raises ``EnrolmentError`` if the id is taken."""
        if self.device(device.id) is not None:
            raise EnrolmentError(f"{device.id}: already enrolled (revoke it and use a new id)")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "INSERT INTO vehicles (vin, fleet) VALUES (?, ?) ON CONFLICT (vin) DO UPDATE"
                " SET fleet = excluded.fleet",
                (device.vin, device.fleet),
            )
            self._db.table("devices").insert(
                {k: getattr(device, k) for k in Device.__dataclass_fields__}
            )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise StoreError(f"enrolling {device.id}: {exc}") from exc

    def revoke(self, device_id: str, at: str) -> None:
        """Mark a device revoked; raises ``EnrolmentError`` if it is unknown."""
        cur = self._conn.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (at, device_id)
        )
        self._devices.forget(device_id)
        if cur.rowcount == 0:
            raise EnrolmentError(f"{device_id}: no such device")

    def devices(self) -> Sequence[Device]:
        """Every enrolled device, by id."""
        return [Device(**row) for row in self._db["devices"].rows_where(order_by="id")]

    # chain -------------------------------------------------------------------------------
    def chain_head(self, device_id: str) -> ChainHead:
        """Where the device's committed chain ends (seq 0, hash ``None`` before any record)."""
        row = self._one("SELECT seq, hash FROM chain WHERE device = ?", (device_id,))
        return ChainHead(row[0], row[1]) if row else ChainHead(0, None)

    def record_hash(self, device_id: str, seq: int) -> str | None:
        """The stored chain hash of ``(device, seq)`` (accepted or quarantined), ``None`` if
        not stored."""
        row = self._one(
            "SELECT hash FROM records WHERE device = ? AND seq = ?"
            " UNION ALL SELECT hash FROM quarantine WHERE device = ? AND seq = ?"
            " UNION ALL SELECT hash FROM public_chain WHERE device = ? AND seq = ?",
            (device_id, seq, device_id, seq, device_id, seq),
        )
        return str(row[0]) if row else None

    def quarantined(self, device_id: str | None = None) -> Sequence[Quarantined]:
        """Quarantined records (of every device, or of one), by device and seq."""
        rows = self._conn.execute(
            "SELECT device, seq, hash, jws, reason, detail, received_at FROM quarantine"
            " WHERE ? IS NULL OR device = ? ORDER BY device, seq",
            (device_id, device_id),
        )
        return [Quarantined(*row) for row in rows]

    def chain_records(self, device_id: str) -> Sequence[str]:
        """Every stored JWS of a device, in seq order (for independent verification), but the
        erased ones."""
        rows = self._conn.execute(
            "SELECT jws FROM records WHERE device = ? AND jws <> '' ORDER BY seq", (device_id,)
        )
        return [str(row[0]) for row in rows]

    def device_records(self, device_id: str, kinds: Sequence[str] | None = None,
                       *, last: int | None = None) -> Sequence[StoredRecord]:  # fmt: skip
        """A device's accepted records (of ``kinds`` only), in seq order; the ``last`` only."""
        wanted = list(kinds) if kinds is not None else []
        where = f" AND kind IN ({', '.join('?' * len(wanted))})" if kinds is not None else ""
        limit = " LIMIT ?" if last is not None else ""
        params: list[Any] = [device_id, *wanted, *([last] if last is not None else [])]
        cols = "device, seq, kind, ts, session, hash, jws, received_at"
        sql = (f"SELECT {cols} FROM records"  # noqa: S608 - placeholders only
               f" WHERE device = ?{where} ORDER BY seq DESC{limit}")
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return [StoredRecord(d, int(q), k, t, s, h, j, r) for d, q, k, t, s, h, j, r in rows[::-1]]

    def card_certificate(self, sha256: str) -> bytes | None:
        """The DER of a card certificate seen before, by its base64url SHA-256."""
        row = self._one("SELECT der FROM card_certificates WHERE sha256 = ?", (sha256,))
        return bytes(row[0]) if row else None

    def session_person(self, session_id: str) -> str | None:
        """The person of a driver session, ``None`` if the session is unknown."""
        row = self._one("SELECT person_id FROM sessions WHERE id = ?", (session_id,))
        return str(row[0]) if row else None

    def session_consents(self, session_id: str) -> Sequence[bodies.Consent]:
        """The consents the driver signed for a session (none if the session is unknown)."""
        row = self._one("SELECT consents FROM sessions WHERE id = ?", (session_id,))
        if row is None:
            return []
        return [bodies.Consent(c["recipient"], tuple(c["categories"]), c["until"])
                for c in json.loads(row[0])]  # fmt: skip

    def person_consents(self, person_id: str) -> Sequence[bodies.Consent]:
        """Every consent the person signed, in any session, oldest session first."""
        rows = self._conn.execute(
            "SELECT consents FROM sessions WHERE person_id = ? ORDER BY started_at, id",
            (person_id,),
        )
        return [bodies.Consent(c["recipient"], tuple(c["categories"]), c["until"])
                for (text,) in rows for c in json.loads(text)]  # fmt: skip

    def add_fleet(self, fleet: Fleet) -> None:
        """Register a fleet operator, or replace its password hash if already registered (the
        hash goes to the secret files, not the database)."""
        self.secret_files.set_fleet_password(fleet.id, fleet.password_hash)
        try:
            self._conn.execute(
                "INSERT INTO fleets VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (fleet.id, fleet.added_at),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot add fleet {fleet.id}: {exc}") from exc

    def fleets(self) -> Sequence[Fleet]:
        """Every registered fleet operator, by id, with its password hash if it has one."""
        hashes = self.secret_files.fleet_passwords()
        rows = self._conn.execute("SELECT id, added_at FROM fleets ORDER BY id")
        return [Fleet(i, a, hashes.get(i)) for i, a in rows]

    def withheld(self) -> Mapping[Withheld, int]:
        """How much data was withheld from fleets, by fleet, kind and reason."""
        rows = self._conn.execute("SELECT fleet, kind, reason, count FROM withheld")
        return {Withheld(f, k, r): int(c) for f, k, r, c in rows}

    def clear_expired(self, now: str) -> int:
        """Queue an empty retained message for every retained publication expired at ``now``."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                topics = [str(t) for (t,) in self._conn.execute(
                    "SELECT topic FROM retained WHERE expires <= ?", (now,))]  # fmt: skip
                self._conn.executemany(
                    "INSERT INTO fanout (topic, payload, retain) VALUES (?, x'', 1)",
                    [(t,) for t in topics],
                )
                self._conn.executemany(
                    "DELETE FROM retained WHERE topic = ?", [(t,) for t in topics]
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot clear expired messages: {exc}") from exc
        return len(topics)

    def pseudonym_secret(self) -> bytes:
        """The registry's secret for per-fleet pseudonyms (made with the database, kept in
        its secret files); raises ``StoreError`` if it is missing."""
        if self._secret is None:
            self._secret = self.secret_files.pseudonym_key()
        return self._secret

    # writing -----------------------------------------------------------------------------
    def commit(self, batch: Batch, fanout: Fanout | None = None) -> None:
        """Commit the whole batch, and what ``fanout`` derives from its new records, in one
        transaction; records already stored stay as they are. Raises ``ChainConflict`` when
        another process committed records of the batch's devices that it contradicts (nothing
        is committed; re-plan and retry), ``StoreError`` when the database fails."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")  # the write lock: every device at once
            try:
                groups = by_device(batch.accepted, batch.quarantined, batch.evictions)
                new: set[int] = set()
                for device, (accepted, quarantined, evictions) in groups.items():
                    lo, hi = span(accepted, quarantined, evictions)
                    plan = plan_device(device, accepted, quarantined, evictions,
                                       self._stored(device, lo, hi))  # fmt: skip
                    for eviction in plan.evictions:
                        self._evict(eviction)
                    for kept in plan.quarantined:
                        if is_stats(kept.jws):  # its cells are never kept: its place only
                            self._conn.execute("INSERT OR IGNORE INTO public_chain VALUES"
                                               " (?, ?, ?)", (kept.device, kept.seq, kept.hash))
                            self._count("refused", 1)
                            continue
                        self._conn.execute(
                            "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (kept.device, kept.seq, kept.hash, kept.jws, kept.reason,
                             kept.detail, _now()),
                        )  # fmt: skip
                    new.update(id(a) for a in plan.accepted)
                touched = set(groups)
                self._applied_before.clear()
                inserted = [acc for acc in batch.accepted if id(acc) in new and self._insert(acc)]
                # a statement the early hook applied already fans out nothing again
                fresh = [a for a in inserted if id(a) not in self._applied_before]
                fanned = fanout(fresh) if fanout is not None and fresh else Fanned()
                self._queue((*batch.publications, *fanned.publications))
                self._conn.executemany(
                    "INSERT INTO withheld VALUES (?, ?, ?, ?) ON CONFLICT (fleet, kind, reason)"
                    " DO UPDATE SET count = count + excluded.count",
                    [(w.fleet, w.kind, w.reason, n) for w, n in fanned.withheld.items()],
                )
                for device in touched:
                    self._advance_head(device)
                for reason, count in batch.rejections.items():
                    self._conn.execute(
                        "INSERT INTO rejections VALUES (?, ?) ON CONFLICT (reason)"
                        " DO UPDATE SET count = count + excluded.count",
                        (reason, count),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except ChainConflict:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: commit failed: {exc}") from exc

    def _stored(self, device: str, lo: int, hi: int) -> Stored:
        rows = self._conn.execute(
            "SELECT seq, hash FROM records WHERE device = ? AND seq BETWEEN ? AND ?"
            " UNION ALL SELECT seq, hash FROM quarantine WHERE device = ? AND seq BETWEEN ? AND ?"
            " UNION ALL SELECT seq, hash FROM public_chain"  # stats records: chain places only
            " WHERE device = ? AND seq BETWEEN ? AND ?",
            (device, lo, hi, device, lo, hi, device, lo, hi),
        ).fetchall()
        evictions = self._conn.execute(
            "SELECT device, first, last, last_hash FROM evictions"
            " WHERE device = ? AND first <= ? AND last >= ?",
            (device, hi, lo),
        ).fetchall()
        return Stored({int(s): str(h) for s, h in rows}, [Eviction(*e) for e in evictions])

    def fanout_pending(self, limit: int) -> Sequence[tuple[int, Publication]]:
        """Committed publications not yet taken by the broker, oldest first, with their ids."""
        rows = self._conn.execute(
            "SELECT id, topic, payload, retain FROM fanout ORDER BY id LIMIT ?", (limit,)
        )
        return [(int(i), Publication(str(t), p.encode() if isinstance(p, str) else bytes(p),
                                     bool(r))) for i, t, p, r in rows]  # fmt: skip

    def fanout_done(self, ids: Sequence[int]) -> None:
        """Forget publications the broker has acknowledged (one transaction, one statement per
        thousand ids); their exchanges are delivered."""
        if not ids:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(ids), 1000):
                    chunk = [int(i) for i in ids[start:start + 1000]]
                    marks = ", ".join("?" * len(chunk))
                    self._conn.execute(f"DELETE FROM fanout WHERE id IN ({marks})", chunk)  # noqa: S608
                    # the exchanges of what the broker took are delivered
                    self._conn.execute("UPDATE exchange_log SET status = 'delivered'"  # noqa: S608
                                       f" WHERE fanout_id IN ({marks})", chunk)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot forget published messages: {exc}") from exc

    def _queue(self, publications: Sequence[Publication]) -> None:
        """Queue publications for the broker (inside the caller's transaction), each with
        its exchange-log entry if it carries a person's data."""
        plain = [p for p in publications if p.exchange is None]
        self._conn.executemany(
            "INSERT INTO fanout (topic, payload, retain) VALUES (?, ?, ?)",
            [(p.topic, _payload_column(p.payload), int(p.retain)) for p in plain],
        )
        now = _now()
        for pub in publications:
            if pub.exchange is None:
                continue
            cur = self._conn.execute(
                "INSERT INTO fanout (topic, payload, retain) VALUES (?, ?, ?)",
                (pub.topic, _payload_column(pub.payload), int(pub.retain)),
            )
            ex = pub.exchange
            self._conn.execute(
                "INSERT INTO exchange_log (person_id, recipient, kind, record, categories,"
                " data_time, consent, sent_at, status, fanout_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                (ex.person_id, ex.recipient, ex.kind, ex.record, ",".join(ex.categories),
                 ex.data_time, ex.consent, now, cur.lastrowid),
            )  # fmt: skip
        self._conn.executemany(
            "INSERT INTO retained VALUES (?, ?) ON CONFLICT (topic)"
            " DO UPDATE SET expires = excluded.expires",
            [(p.topic, p.expires) for p in publications if p.retain and p.expires],
        )
        self._conn.executemany(
            "DELETE FROM retained WHERE topic = ?",
            [(p.topic,) for p in publications if p.retain and not p.payload],
        )

    def _evict(self, ev: Eviction) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO evictions VALUES (?, ?, ?, ?)",
            (ev.device, ev.first, ev.last, ev.last_hash),
        )

    def _advance_head(self, device: str) -> None:
        head = self.chain_head(device)
        seq, hash_ = head.seq, head.hash
        while True:
            found = self.record_hash(device, seq + 1)
            if found is not None:
                seq, hash_ = seq + 1, found
                continue
            row = self._one(
                "SELECT last, last_hash FROM evictions WHERE device = ? AND first = ?",
                (device, seq + 1),
            )
            if row is None:
                break
            seq, hash_ = row[0], row[1]
        self._conn.execute(
            "INSERT INTO chain VALUES (?, ?, ?) ON CONFLICT (device)"
            " DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (device, seq, hash_),
        )

    def _insert(self, acc: Accepted) -> bool:
        rec = acc.record
        if isinstance(rec.body, bodies.Stats):
            return self._contribute(acc)
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.device, rec.seq, acc.hash, rec.kind, rec.ts, rec.session, acc.jws, _now()),
        )
        if cur.rowcount == 0:
            return False  # a duplicate: the first copy is kept, nothing derived twice
        body = rec.body
        if acc.statement is not None:
            if not self._apply_statement(acc.statement):
                self._applied_before.add(id(acc))
            return True
        if isinstance(body, bodies.SessionStart) and acc.card is not None:
            self._session_start(rec, body, acc)
            return True
        person = self.session_person(rec.session) if rec.session else None
        common = (rec.device, rec.seq, rec.session, person, rec.vin)
        run = self._conn.execute
        if isinstance(body, bodies.SessionEnd) and rec.session:
            run("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
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
        return True

    def _session_start(self, rec: Record, body: bodies.SessionStart, acc: Accepted) -> None:
        card = acc.card
        assert card is not None
        st = body.statement
        self._conn.execute(
            "INSERT OR IGNORE INTO persons VALUES (?, ?, ?)",
            (card.person_id, card.key_sha256, rec.ts),
        )
        self._conn.execute(
            "INSERT OR IGNORE INTO card_certificates VALUES (?, ?, ?)",
            (card.certificate_sha256, card.person_id, card.certificate_der),
        )
        consents = [
            {"recipient": c.recipient, "categories": list(c.categories), "until": c.until}
            for c in st.consents
        ]
        self._conn.execute(
            "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
            (st.session, card.person_id, rec.device, st.vin, st.vehicle_class, st.started_at,
             st.licence.expiry, dumps(list(st.licence.categories)), dumps(consents)),
        )  # fmt: skip
        self._conn.execute(
            "UPDATE vehicles SET vehicle_class = ? WHERE vin = ?", (st.vehicle_class, st.vin)
        )

    # reading -----------------------------------------------------------------------------
    def rejections(self) -> Mapping[str, int]:
        """Rejection counts by reason since the store was created."""
        return {r: c for r, c in self._conn.execute("SELECT reason, count FROM rejections")}

    def persons(self) -> Sequence[Person]:
        """Every person, by id."""
        return [Person(**row) for row in self._db["persons"].rows_where(order_by="id")]

    def sessions(self, person_id: str | None = None) -> Sequence[SessionRow]:
        """Driver sessions (all, or one person's), by start time."""
        where, params = ("person_id = ?", [person_id]) if person_id else (None, [])
        fields = list(SessionRow.__dataclass_fields__)
        return [
            SessionRow(**{k: row[k] for k in fields})
            for row in self._db["sessions"].rows_where(where, params, order_by="started_at, id")
        ]

    def vehicles(self) -> Sequence[VehicleRow]:
        """Every vehicle, by VIN, with how many devices and persons it has seen."""
        rows = self._conn.execute(
            "SELECT v.vin, v.fleet, v.vehicle_class,"
            " (SELECT count(*) FROM devices d WHERE d.vin = v.vin),"
            " (SELECT count(DISTINCT s.person_id) FROM sessions s WHERE s.vin = v.vin)"
            " FROM vehicles v ORDER BY v.vin"
        )
        return [VehicleRow(*row) for row in rows]

    def trips(self, person_id: str) -> Sequence[TripRow]:
        """The trips attributed to a person, in every vehicle, by end time."""
        rows = self._conn.execute(
            'SELECT person_id, vin, "end", distance_km, penalty_points, score FROM trips'
            ' WHERE person_id = ? ORDER BY "end", device, seq',
            (person_id,),
        )
        return [TripRow(*row) for row in rows]

    def counts(self) -> Mapping[str, int]:
        """Row counts per table."""
        tables = ("devices", "vehicles", "persons", "sessions", "records", "quarantine", "trips",
                  "events", "dtcs", "emergencies", "evictions", "fanout", "fleets",
                  "public_chain", "public_contributions", "public_stats")  # fmt: skip
        return {t: int(self._one(f"SELECT count(*) FROM {t}")[0]) for t in tables}  # noqa: S608


    # public statistics (issue 14; cloud_sync.public, docs/public.md) ------------------------
    def _contribute(self, acc: Accepted) -> bool:
        """Keep a ``stats`` record's chain place and add its contributions under keyed tags;
        nothing else of it (JWS, body, ts, VIN) is stored. False for a duplicate."""
        rec = acc.record
        cur = self._conn.execute("INSERT OR IGNORE INTO public_chain VALUES (?, ?, ?)",
                                 (rec.device, rec.seq, acc.hash))  # fmt: skip
        if cur.rowcount == 0:
            return False  # a re-sent record: its contributions are in already
        if self._public_key is None:
            self._public_key = contributor_key(self.pseudonym_secret())
        rows = contributions(rec, self._public_key)
        closed = self.public_closed_before()
        fresh = [c for c in rows if closed is None or c.hour >= closed]
        self._conn.executemany(_ADD_CONTRIBUTION, [
            (c.cell, c.hour, c.contributor, c.distance_km, c.duration_s, c.fuel_l, c.co2_kg)
            for c in fresh])  # fmt: skip
        self._count("contributions", len(rows))
        if len(rows) > len(fresh):
            self._count("late", len(rows) - len(fresh))
            log.info("%d public contribution(s) for hours already released: dropped",
                     len(rows) - len(fresh))  # fmt: skip
        return True

    def _count(self, name: str, n: int) -> None:
        self._conn.execute(
            "INSERT INTO public_counters VALUES (?, ?) ON CONFLICT (name)"
            " DO UPDATE SET count = count + excluded.count", (name, n))  # fmt: skip

    def public_chain(self, device_id: str) -> Sequence[tuple[int, str]]:
        """``(seq, hash)`` of the device's ``stats`` records, by seq."""
        rows = self._conn.execute(
            "SELECT seq, hash FROM public_chain WHERE device = ? ORDER BY seq", (device_id,))
        return [(int(q), str(h)) for q, h in rows]

    def public_closed_before(self) -> str | None:
        """The hour before which every hour is released; None before the first release."""
        row = self._one("SELECT value FROM public_state WHERE name = 'closed_before'")
        return str(row[0]) if row else None

    def public_release(self, before: str, decide: PublicDecide) -> PublicCounts:
        """Release every hour before ``before`` (see ``Store.public_release``); the deleted
        contributions are overwritten on disk (``secure_delete``) and the write-ahead log is
        checkpointed and truncated after the commit."""
        conn = self._conn
        try:
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                old = self.public_closed_before()
                until = before if old is None or before > old else old
                late = 0
                if old is not None:
                    late = int(conn.execute("SELECT count(*) FROM public_contributions"
                                            " WHERE hour < ?", (old,)).fetchone()[0])  # fmt: skip
                due = [CellAggregate(str(c), str(h), int(n), *map(float, sums))
                       for c, h, n, *sums in conn.execute(_DUE, (until, old))]  # fmt: skip
                releases, publications = decide(due)
                conn.executemany(
                    "INSERT INTO public_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r.cell, r.hour, r.contributors, r.distance_km, r.duration_s,
                      r.mean_speed_kmh, r.fuel_l, r.co2_kg, r.epsilon, r.k, r.released_at)
                     for r in releases])  # fmt: skip
                conn.executemany(
                    "INSERT INTO fanout (topic, payload, retain) VALUES (?, ?, ?)",
                    [(p.topic, _payload_column(p.payload), int(p.retain)) for p in publications])
                conn.execute("DELETE FROM public_contributions WHERE hour < ?", (until,))
                conn.execute("INSERT INTO public_state VALUES ('closed_before', ?) ON CONFLICT"
                             " (name) DO UPDATE SET value = excluded.value", (until,))  # fmt: skip
                counts = PublicCounts(len(releases), len(due) - len(releases), late)
                for name, n in (("released", counts.released), ("suppressed", counts.suppressed),
                                ("late", late)):  # fmt: skip
                    if n:
                        self._count(name, n)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                if not conn.in_transaction:
                    conn.execute("PRAGMA secure_delete = OFF")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: public release failed: {exc}") from exc
        return counts

    def public_stats(self, since: str | None = None) -> Sequence[PublicRelease]:
        """Every published (cell, hour) (of ``since`` and later), by hour and cell."""
        rows = self._conn.execute(
            "SELECT cell, hour, contributors, distance_km, duration_s, mean_speed_kmh, fuel_l,"
            " co2_kg, epsilon, k, released_at FROM public_stats"
            " WHERE ? IS NULL OR hour >= ? ORDER BY hour, cell", (since, since))  # fmt: skip
        return [PublicRelease(*row) for row in rows]

    def public_counters(self) -> Mapping[str, int]:
        """Totals of the public tier (released, suppressed, late, contributions)."""
        return {str(n): int(c) for n, c in self._conn.execute(
            "SELECT name, count FROM public_counters")}  # fmt: skip


#: Adds a device's contribution to a (cell, hour), its sum clamped to the bound.
_ADD_CONTRIBUTION = "".join((
    "INSERT INTO public_contributions VALUES (?, ?, ?, ?, ?, ?, ?)",
    " ON CONFLICT (cell, hour, contributor) DO UPDATE SET",
    *(f"{',' if i else ''} {name} = min({name} + excluded.{name}, {bound!r})"
      for i, (name, bound) in enumerate((("distance_km", BOUNDS.distance_km),
                                         ("duration_s", BOUNDS.duration_s),
                                         ("fuel_l", BOUNDS.fuel_l), ("co2_kg", BOUNDS.co2_kg)))),
))  # fmt: skip
#: The (cell, hour)s due for release: hours before the new mark and not before the old one.
_DUE = (
    "SELECT cell, hour, count(*), sum(distance_km), sum(duration_s), sum(fuel_l), sum(co2_kg)"
    " FROM public_contributions WHERE hour < ?1 AND (?2 IS NULL OR hour >= ?2)"
    " GROUP BY hour, cell ORDER BY hour, cell"
)


def _payload_column(payload: bytes) -> str | bytes:
    """A fleet copy as the ``fanout`` table keeps it: JSON as text, anything else as bytes."""
    text = as_text(payload)
    return payload if text is None else text


def _create_private(path: Path) -> bool:
    """Create ``path`` empty and 0600 if it does not exist (SQLite gives its ``-wal`` and
    ``-shm`` files the same mode); returns whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_size:
            return False
        os.chmod(path, 0o600)  # an empty file someone made: it becomes the database
        return True
    os.close(fd)
    return True


def _make_private(path: Path) -> None:
    """Restrict a migrated database (and its WAL files) to its owner."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists() and name.stat().st_mode & 0o077:
            os.chmod(name, 0o600)
            log.warning("%s: was readable by others; now 0600", name)
