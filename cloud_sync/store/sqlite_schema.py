"""The registry database's tables, its ``person_scores`` view, and the migrations between
versions (``PRAGMA user_version``; docs/sync.md, *Storage*, documents every table).

* version 1 (``user_version`` 0: the layout before versions were numbered) had the pseudonym
  key in a ``secrets`` table, fleet password hashes in ``fleets.password_hash``, no foreign
  keys, JSON with ``\\uXXXX`` escapes and fleet copies as BLOBs;
* version 2 moves the secrets to files (``cloud_sync.secret_files``) and deletes them from the
  database (then ``VACUUM``, so no freed page keeps them), declares foreign keys, stores JSON as
  UTF-8 text, and adds the ``quarantine`` table and the ``person_scores`` view;
* version 3 (issue 14, public statistics) adds the ``public_*`` tables (``_PUBLIC_TABLES``):
  ``public_chain`` (the chain place of each ``stats`` record, nothing else of it),
  ``public_contributions`` (per (cell, hour, keyed contributor tag) until the hour's release;
  ``WITHOUT ROWID``, so no insertion order ties one record's cells together),
  ``public_stats`` (what was published, noised), ``public_state`` and ``public_counters``.

Foreign keys are declared for readers (Datasette links rows by them) and checked by the tests
(``PRAGMA foreign_key_check``), but not enforced at run time: an enforcement error would stop
ingest for every device on one inconsistent row.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Final

from msp_protocol.scoring import DECAY_DAYS, SHORT_TRIP_KM

from ..errors import SchemaVersionError
from ..secret_files import SecretFiles

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 5

_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS vehicles (vin TEXT PRIMARY KEY, fleet TEXT NOT NULL,
  vehicle_class TEXT)""",
    """CREATE TABLE IF NOT EXISTS devices (id TEXT PRIMARY KEY,
  vin TEXT NOT NULL REFERENCES vehicles(vin), fleet TEXT NOT NULL,
  public_key_pem TEXT NOT NULL, alg TEXT NOT NULL, certificate_pem TEXT NOT NULL,
  enrolled_at TEXT NOT NULL, revoked_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS records (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, hash TEXT NOT NULL, kind TEXT NOT NULL, ts TEXT NOT NULL, session TEXT,
  jws TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS quarantine (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, hash TEXT NOT NULL, jws TEXT NOT NULL, reason TEXT NOT NULL,
  detail TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS evictions (device TEXT NOT NULL REFERENCES devices(id),
  first INTEGER NOT NULL, last INTEGER NOT NULL, last_hash TEXT NOT NULL,
  PRIMARY KEY (device, first))""",
    """CREATE TABLE IF NOT EXISTS chain (device TEXT PRIMARY KEY REFERENCES devices(id),
  seq INTEGER NOT NULL, hash TEXT)""",
    """CREATE TABLE IF NOT EXISTS persons (id TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL UNIQUE,
  first_seen TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS card_certificates (sha256 TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id), der BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id), device TEXT NOT NULL REFERENCES devices(id),
  vin TEXT NOT NULL REFERENCES vehicles(vin), vehicle_class TEXT NOT NULL,
  started_at TEXT NOT NULL, ended_at TEXT, end_reason TEXT, licence_expiry TEXT NOT NULL,
  licence_categories TEXT NOT NULL, consents TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS trips (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id),
  vin TEXT NOT NULL REFERENCES vehicles(vin), start TEXT NOT NULL, "end" TEXT NOT NULL,
  distance_km REAL NOT NULL, odometer_km REAL, duration_s REAL NOT NULL,
  max_speed_kmh REAL NOT NULL, fuel_l REAL, co2_kg REAL, idle_s REAL NOT NULL,
  night_share REAL NOT NULL, events TEXT NOT NULL, penalty_points REAL NOT NULL, score REAL,
  PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS events (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id),
  vin TEXT NOT NULL REFERENCES vehicles(vin), type TEXT NOT NULL, start TEXT NOT NULL,
  duration_s REAL NOT NULL, peak REAL NOT NULL, speed_kmh REAL NOT NULL, severity TEXT NOT NULL,
  lat REAL, lon REAL, PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS dtcs (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id),
  vin TEXT NOT NULL REFERENCES vehicles(vin), ts TEXT NOT NULL, code TEXT NOT NULL,
  status TEXT NOT NULL, mil INTEGER NOT NULL, odometer_km REAL, PRIMARY KEY (device, seq, code))""",
    """CREATE TABLE IF NOT EXISTS emergencies (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id),
  vin TEXT NOT NULL REFERENCES vehicles(vin), detected_at TEXT NOT NULL, trigger TEXT NOT NULL,
  peak_decel_ms2 REAL NOT NULL, speed_kmh REAL NOT NULL, lat REAL, lon REAL,
  PRIMARY KEY (device, seq))""",
    "CREATE TABLE IF NOT EXISTS rejections (reason TEXT PRIMARY KEY, count INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS fanout (id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL, payload TEXT NOT NULL, retain INTEGER NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS fleets (id TEXT PRIMARY KEY, added_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, expires TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS withheld (fleet TEXT NOT NULL, kind TEXT NOT NULL,
  reason TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (fleet, kind, reason))""",
)

#: Version 3: the person's own acts (issue 14).
_PERSON_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS consent_statements (id TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id), device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, action TEXT NOT NULL, recipient TEXT NOT NULL, categories TEXT NOT NULL,
  until TEXT, signed_at TEXT NOT NULL, statement TEXT NOT NULL, received_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS exchange_log (id INTEGER PRIMARY KEY AUTOINCREMENT,
  person_id TEXT NOT NULL REFERENCES persons(id), recipient TEXT NOT NULL, kind TEXT NOT NULL,
  record TEXT, categories TEXT NOT NULL, data_time TEXT NOT NULL, consent TEXT NOT NULL,
  sent_at TEXT NOT NULL, status TEXT NOT NULL, fanout_id INTEGER)""",
    """CREATE TABLE IF NOT EXISTS person_requests (id TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id), device TEXT NOT NULL REFERENCES devices(id),
  action TEXT NOT NULL, signed_at TEXT NOT NULL, answered_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS successions (old_key_sha256 TEXT PRIMARY KEY,
  new_key_sha256 TEXT NOT NULL, person_id TEXT NOT NULL REFERENCES persons(id),
  signed_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS consent_person ON consent_statements (person_id, signed_at)",
    "CREATE INDEX IF NOT EXISTS exchange_person ON exchange_log (person_id, id)",
    "CREATE INDEX IF NOT EXISTS exchange_fanout ON exchange_log (fanout_id)",
)

# -- version 4: public statistics (issue 14, docs/public.md) -------------------------------------
_PUBLIC_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS public_chain (device TEXT NOT NULL REFERENCES devices(id),
  seq INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS public_contributions (cell TEXT NOT NULL, hour TEXT NOT NULL,
  contributor TEXT NOT NULL, distance_km REAL NOT NULL, duration_s REAL NOT NULL,
  fuel_l REAL NOT NULL, co2_kg REAL NOT NULL, PRIMARY KEY (cell, hour, contributor))
  WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS public_stats (cell TEXT NOT NULL, hour TEXT NOT NULL,
  contributors INTEGER NOT NULL, distance_km REAL NOT NULL, duration_s REAL NOT NULL,
  mean_speed_kmh REAL, fuel_l REAL NOT NULL, co2_kg REAL NOT NULL, epsilon REAL NOT NULL,
  k INTEGER NOT NULL, released_at TEXT NOT NULL, PRIMARY KEY (hour, cell))""",
    "CREATE TABLE IF NOT EXISTS public_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS public_counters (name TEXT PRIMARY KEY, count INTEGER NOT NULL)",
)
# -- end of version 4 ----------------------------------------------------------------------------

#: Version 5: recipients of every role and sealed emergency profiles (issue 15).
_RECIPIENT_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS recipients (id TEXT PRIMARY KEY, role TEXT NOT NULL,
  added_at TEXT NOT NULL, public_key TEXT)""",
    """CREATE TABLE IF NOT EXISTS profiles (person_id TEXT NOT NULL REFERENCES persons(id),
  responder TEXT NOT NULL, id TEXT NOT NULL, signed_at TEXT NOT NULL, sealed TEXT NOT NULL,
  statement TEXT NOT NULL, card_signature TEXT NOT NULL, card_certificate_sha256 TEXT NOT NULL,
  PRIMARY KEY (person_id, responder))""",
)

_INDEXES: Final = (
    'CREATE INDEX IF NOT EXISTS trips_person ON trips (person_id, "end")',
    "CREATE INDEX IF NOT EXISTS sessions_person ON sessions (person_id, started_at)",
)

#: Each person's portable score now, as ``cloud_sync.republish.score_of`` computes it
#: (``msp_protocol.scoring.person_score``), for readers of the database; SQLite's math
#: functions (``exp``, 3.35 and later) are needed to query it.
PERSON_SCORES_VIEW: Final = f"""CREATE VIEW IF NOT EXISTS person_scores AS
SELECT p.id AS person_id, p.first_seen, count(t.seq) AS trips,
  count(DISTINCT t.vin) AS vehicles, round(coalesce(sum(t.distance_km), 0), 1) AS km,
  CASE WHEN coalesce(sum(t.distance_km), 0) < {SHORT_TRIP_KM!r}
         OR coalesce(sum(t.w * t.distance_km), 0) <= 0 THEN NULL
       ELSE 100.0 - min(100.0, 100.0 * sum(t.w * t.penalty_points) / sum(t.w * t.distance_km))
  END AS score
FROM persons p LEFT JOIN (
  SELECT person_id, vin, seq, distance_km, penalty_points,
    exp(-max(0.0, julianday('now') - julianday("end")) / {DECAY_DAYS!r}) AS w FROM trips
) t ON t.person_id = p.id
GROUP BY p.id"""  # noqa: S608 - two numeric constants of msp_protocol.scoring

#: JSON columns: kept as UTF-8 text (what Datasette shows and its JSON functions read).
JSON_COLUMNS: Final = {"sessions": ("licence_categories", "consents"), "trips": ("events",)}


def dumps(value: object) -> str:
    """JSON as the database keeps it: UTF-8 text, no ``\\uXXXX`` escapes, sorted keys."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]


def is_empty(conn: sqlite3.Connection) -> bool:
    """True for a database without a single table (a file that was never a registry)."""
    return not _tables(conn)


def create(conn: sqlite3.Connection) -> None:
    """Make every table, index and view of the current version in an empty database."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in (*_TABLES, *_INDEXES, *_PERSON_TABLES, *_PUBLIC_TABLES,
                          *_RECIPIENT_TABLES, PERSON_SCORES_VIEW):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def version(conn: sqlite3.Connection) -> int:
    """The database's schema version (``user_version``; 0, the layout before versions were
    numbered, is version 1)."""
    return max(1, int(conn.execute("PRAGMA user_version").fetchone()[0]))


def migrate(conn: sqlite3.Connection, secret_files: SecretFiles, where: str, *,
            apply: bool = True) -> bool:  # fmt: skip
    """Bring an existing database to ``SCHEMA_VERSION`` step by step (:data:`STEPS`); returns
    True if it changed anything. Raises ``SchemaVersionError`` for a newer database, or an
    older one when ``apply`` is false; ``sqlite3.Error`` or ``StoreError`` (a secret file that
    cannot be written or that contradicts the database) leave the database as it was."""
    found = version(conn)
    if found == SCHEMA_VERSION:
        return False
    if found > SCHEMA_VERSION or not apply:
        raise SchemaVersionError(where, found, SCHEMA_VERSION)
    for step in range(found + 1, SCHEMA_VERSION + 1):
        STEPS[step](conn, secret_files)
    return True


def _adding_tables(target: int, statements: tuple[str, ...], what: str,
                   ) -> Callable[[sqlite3.Connection, SecretFiles], None]:  # fmt: skip
    """The step to version ``target`` that only creates new tables (``statements``): one
    transaction, skipped if another process got there first."""

    def step(conn: sqlite3.Connection, _secret_files: SecretFiles) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) >= target:
                conn.execute("ROLLBACK")
                return
            log.warning("migrating the registry database to schema version %d (%s)", target,
                        what)  # fmt: skip
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    return step


def _to_version_2(conn: sqlite3.Connection, secret_files: SecretFiles) -> None:
    conn.execute("PRAGMA legacy_alter_table = ON")  # renames must not rewrite references
    conn.execute("BEGIN IMMEDIATE")  # one migration at a time: another process may race us
    try:
        if version(conn) >= 2:
            conn.execute("ROLLBACK")
            return
        log.warning("migrating the registry database to schema version 2 (secrets to %s)",
                    secret_files.directory)  # fmt: skip
        tables = _tables(conn)
        _secrets_out(conn, tables, secret_files)
        # Rebuild every table in the new layout (only a new table can declare foreign keys
        # in SQLite), copying the columns both layouts have.
        for name, kind in conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('index', 'view')"
            " AND name NOT LIKE 'sqlite_%'"
        ).fetchall():
            conn.execute(f'DROP {kind.upper()} "{name}"')
        old = sorted(t for t in tables if not t.startswith("sqlite_"))
        for table in old:
            conn.execute(f'ALTER TABLE "{table}" RENAME TO "_v1_{table}"')
        for statement in (*_TABLES, *_INDEXES, PERSON_SCORES_VIEW):
            conn.execute(statement)
        new = _tables(conn)
        for table in old:
            if table in new:
                _copy(conn, table)
            conn.execute(f'DROP TABLE "_v1_{table}"')
        conn.execute("PRAGMA user_version = 2")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF")
    # The dropped secrets must not survive in freed pages or the write-ahead log.
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


#: The steps that bring a database from version N-1 to N, by N (add the same change to
#: ``postgres_schema``).
STEPS: Final[dict[int, Callable[[sqlite3.Connection, SecretFiles], None]]] = {
    2: _to_version_2,
    3: _adding_tables(3, _PERSON_TABLES, "consents, exchange log, requests, successions"),
    4: _adding_tables(4, _PUBLIC_TABLES, "public statistics"),
    5: _adding_tables(5, _RECIPIENT_TABLES, "recipients, emergency profiles"),
}


def _secrets_out(conn: sqlite3.Connection, tables: set[str], secret_files: SecretFiles) -> None:
    """Write the database's secrets to their files, before anything is dropped."""
    if "secrets" in tables:
        row = conn.execute("SELECT value FROM secrets WHERE name = 'pseudonym'").fetchone()
        if row is not None:
            secret_files.create_pseudonym_key(bytes(row[0]))
    if "password_hash" in _columns(conn, "fleets"):
        for fleet, hashed in conn.execute("SELECT id, password_hash FROM fleets").fetchall():
            if hashed:
                secret_files.set_fleet_password(str(fleet), str(hashed))


def _copy(conn: sqlite3.Connection, table: str) -> None:
    columns = [c for c in _columns(conn, table) if c in set(_columns(conn, f"_v1_{table}"))]
    names = ", ".join(f'"{c}"' for c in columns)
    conn.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "_v1_{table}"')  # noqa: S608
    for column in JSON_COLUMNS.get(table, ()):
        rows = conn.execute(f'SELECT rowid, "{column}" FROM "{table}"').fetchall()  # noqa: S608
        conn.executemany(
            f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?',  # noqa: S608
            [(dumps(json.loads(value)), rowid) for rowid, value in rows],
        )
    if table == "fanout":
        blobs = conn.execute("SELECT id, payload FROM fanout WHERE typeof(payload) = 'blob'")
        texts = [(as_text(bytes(blob)), i) for i, blob in blobs.fetchall()]
        conn.executemany("UPDATE fanout SET payload = ? WHERE id = ?",
                         [(text, i) for text, i in texts if text is not None])  # fmt: skip


def as_text(payload: bytes) -> str | None:
    """``payload`` as text if it is UTF-8 (fleet copies are JSON), else ``None``."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
