"""The registry's tables in PostgreSQL, its ``person_scores`` view, and its versioned migrations.

The same tables, columns and keys as the SQLite layout (``cloud_sync.store.sqlite_schema``;
docs/sync.md, *Storage*, documents every table), in PostgreSQL's types: ``BIGINT`` seqs,
``DOUBLE PRECISION`` for SQLite's ``REAL``, ``BYTEA`` for blobs and for the ``fanout`` queue's
payloads, ``BOOLEAN`` flags. Wire-format instants stay ``TEXT`` as in SQLite (what the records
say, byte for byte); JSON columns are UTF-8 ``TEXT`` as there. Foreign keys are declared and,
unlike SQLite, enforced, ``DEFERRABLE INITIALLY DEFERRED`` (checked at commit, so the order of
the inserts inside one transaction does not matter).

Versions share the SQLite numbering (a "schema 2" database has the same tables on either back
end): version 2 is the first PostgreSQL layout. The version is the one row of
``schema_version``; :func:`migrate` applies the steps of :data:`STEPS` in order, each in its
own transaction, under an advisory lock so that workers starting together migrate once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from msp_protocol.scoring import DECAY_DAYS, SHORT_TRIP_KM

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 5

#: The advisory lock key every schema change takes (``pg_advisory_xact_lock``).
SCHEMA_LOCK: Final = 0x6D73_7001

_FK: Final = "DEFERRABLE INITIALLY DEFERRED"

_TABLES: Final = (
    """CREATE TABLE vehicles (vin TEXT PRIMARY KEY, fleet TEXT NOT NULL, vehicle_class TEXT)""",
    f"""CREATE TABLE devices (id TEXT PRIMARY KEY,
  vin TEXT NOT NULL REFERENCES vehicles(vin) {_FK}, fleet TEXT NOT NULL,
  public_key_pem TEXT NOT NULL, alg TEXT NOT NULL, certificate_pem TEXT NOT NULL,
  enrolled_at TEXT NOT NULL, revoked_at TEXT)""",
    f"""CREATE TABLE records (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, hash TEXT NOT NULL, kind TEXT NOT NULL, ts TEXT NOT NULL, session TEXT,
  jws TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (device, seq))""",
    f"""CREATE TABLE quarantine (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, hash TEXT NOT NULL, jws TEXT NOT NULL, reason TEXT NOT NULL,
  detail TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (device, seq))""",
    f"""CREATE TABLE evictions (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  first BIGINT NOT NULL, last BIGINT NOT NULL, last_hash TEXT NOT NULL,
  PRIMARY KEY (device, first))""",
    f"""CREATE TABLE chain (device TEXT PRIMARY KEY REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, hash TEXT)""",
    """CREATE TABLE persons (id TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL UNIQUE,
  first_seen TEXT NOT NULL)""",
    f"""CREATE TABLE card_certificates (sha256 TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id) {_FK}, der BYTEA NOT NULL)""",
    f"""CREATE TABLE sessions (id TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id) {_FK},
  device TEXT NOT NULL REFERENCES devices(id) {_FK},
  vin TEXT NOT NULL REFERENCES vehicles(vin) {_FK}, vehicle_class TEXT NOT NULL,
  started_at TEXT NOT NULL, ended_at TEXT, end_reason TEXT, licence_expiry TEXT NOT NULL,
  licence_categories TEXT NOT NULL, consents TEXT NOT NULL)""",
    f"""CREATE TABLE trips (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id) {_FK},
  vin TEXT NOT NULL REFERENCES vehicles(vin) {_FK}, start TEXT NOT NULL, "end" TEXT NOT NULL,
  distance_km DOUBLE PRECISION NOT NULL, odometer_km DOUBLE PRECISION,
  duration_s DOUBLE PRECISION NOT NULL, max_speed_kmh DOUBLE PRECISION NOT NULL,
  fuel_l DOUBLE PRECISION, co2_kg DOUBLE PRECISION, idle_s DOUBLE PRECISION NOT NULL,
  night_share DOUBLE PRECISION NOT NULL, events TEXT NOT NULL,
  penalty_points DOUBLE PRECISION NOT NULL, score DOUBLE PRECISION,
  PRIMARY KEY (device, seq))""",
    f"""CREATE TABLE events (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id) {_FK},
  vin TEXT NOT NULL REFERENCES vehicles(vin) {_FK}, type TEXT NOT NULL, start TEXT NOT NULL,
  duration_s DOUBLE PRECISION NOT NULL, peak DOUBLE PRECISION NOT NULL,
  speed_kmh DOUBLE PRECISION NOT NULL, severity TEXT NOT NULL,
  lat DOUBLE PRECISION, lon DOUBLE PRECISION, PRIMARY KEY (device, seq))""",
    f"""CREATE TABLE dtcs (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id) {_FK},
  vin TEXT NOT NULL REFERENCES vehicles(vin) {_FK}, ts TEXT NOT NULL, code TEXT NOT NULL,
  status TEXT NOT NULL, mil INTEGER NOT NULL, odometer_km DOUBLE PRECISION,
  PRIMARY KEY (device, seq, code))""",
    f"""CREATE TABLE emergencies (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, session TEXT, person_id TEXT REFERENCES persons(id) {_FK},
  vin TEXT NOT NULL REFERENCES vehicles(vin) {_FK}, detected_at TEXT NOT NULL,
  trigger TEXT NOT NULL, peak_decel_ms2 DOUBLE PRECISION NOT NULL,
  speed_kmh DOUBLE PRECISION NOT NULL, lat DOUBLE PRECISION, lon DOUBLE PRECISION,
  PRIMARY KEY (device, seq))""",
    "CREATE TABLE rejections (reason TEXT PRIMARY KEY, count BIGINT NOT NULL)",
    """CREATE TABLE fanout (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic TEXT NOT NULL, payload BYTEA NOT NULL, retain BOOLEAN NOT NULL DEFAULT FALSE)""",
    "CREATE TABLE fleets (id TEXT PRIMARY KEY, added_at TEXT NOT NULL)",
    "CREATE TABLE retained (topic TEXT PRIMARY KEY, expires TEXT NOT NULL)",
    """CREATE TABLE withheld (fleet TEXT NOT NULL, kind TEXT NOT NULL,
  reason TEXT NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (fleet, kind, reason))""",
)

_INDEXES: Final = (
    'CREATE INDEX trips_person ON trips (person_id, "end")',
    "CREATE INDEX sessions_person ON sessions (person_id, started_at)",
)

#: Each person's portable score now, as ``cloud_sync.republish.score_of`` computes it; the
#: same view as SQLite's (``sqlite_schema.PERSON_SCORES_VIEW``) in PostgreSQL's functions.
PERSON_SCORES_VIEW: Final = f"""CREATE VIEW person_scores AS
SELECT p.id AS person_id, p.first_seen, count(t.seq) AS trips,
  count(DISTINCT t.vin) AS vehicles,
  round(coalesce(sum(t.distance_km), 0)::numeric, 1)::double precision AS km,
  CASE WHEN coalesce(sum(t.distance_km), 0) < {SHORT_TRIP_KM!r}
         OR coalesce(sum(t.w * t.distance_km), 0) <= 0 THEN NULL
       ELSE 100.0 - least(100.0, 100.0 * sum(t.w * t.penalty_points) / sum(t.w * t.distance_km))
  END AS score
FROM persons p LEFT JOIN (
  SELECT person_id, vin, seq, distance_km, penalty_points,
    exp(-greatest(0.0, extract(epoch FROM (now() - "end"::timestamptz)) / 86400.0)
        / {DECAY_DAYS!r}) AS w FROM trips
) t ON t.person_id = p.id
GROUP BY p.id"""  # noqa: S608 - two numeric constants of msp_protocol.scoring


def _create_version_2(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for statement in (*_TABLES, *_INDEXES, PERSON_SCORES_VIEW):
        conn.execute(statement.encode())


#: Version 3 (issue 14): the person's own acts, as ``sqlite_schema._PERSON_TABLES``.
_PERSON_TABLES: Final = (
    f"""CREATE TABLE consent_statements (id TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id) {_FK},
  device TEXT NOT NULL REFERENCES devices(id) {_FK}, seq BIGINT NOT NULL,
  action TEXT NOT NULL, recipient TEXT NOT NULL, categories TEXT NOT NULL, until TEXT,
  signed_at TEXT NOT NULL, statement TEXT NOT NULL, received_at TEXT NOT NULL)""",
    f"""CREATE TABLE exchange_log (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id) {_FK}, recipient TEXT NOT NULL,
  kind TEXT NOT NULL, record TEXT, categories TEXT NOT NULL, data_time TEXT NOT NULL,
  consent TEXT NOT NULL, sent_at TEXT NOT NULL, status TEXT NOT NULL, fanout_id BIGINT)""",
    f"""CREATE TABLE person_requests (id TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES persons(id) {_FK},
  device TEXT NOT NULL REFERENCES devices(id) {_FK}, action TEXT NOT NULL,
  signed_at TEXT NOT NULL, answered_at TEXT)""",
    f"""CREATE TABLE successions (old_key_sha256 TEXT PRIMARY KEY,
  new_key_sha256 TEXT NOT NULL, person_id TEXT NOT NULL REFERENCES persons(id) {_FK},
  signed_at TEXT NOT NULL)""",
    "CREATE INDEX consent_person ON consent_statements (person_id, signed_at)",
    "CREATE INDEX exchange_person ON exchange_log (person_id, id)",
    "CREATE INDEX exchange_fanout ON exchange_log (fanout_id)",
)


# -- version 4: public statistics (issue 14, docs/public.md; as sqlite_schema's version 4) -------
_PUBLIC_TABLES: Final = (
    f"""CREATE TABLE public_chain (device TEXT NOT NULL REFERENCES devices(id) {_FK},
  seq BIGINT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (device, seq))""",
    """CREATE TABLE public_contributions (cell TEXT NOT NULL, hour TEXT NOT NULL,
  contributor TEXT NOT NULL, distance_km DOUBLE PRECISION NOT NULL,
  duration_s DOUBLE PRECISION NOT NULL, fuel_l DOUBLE PRECISION NOT NULL,
  co2_kg DOUBLE PRECISION NOT NULL, PRIMARY KEY (cell, hour, contributor))""",
    """CREATE TABLE public_stats (cell TEXT NOT NULL, hour TEXT NOT NULL,
  contributors BIGINT NOT NULL, distance_km DOUBLE PRECISION NOT NULL,
  duration_s DOUBLE PRECISION NOT NULL, mean_speed_kmh DOUBLE PRECISION,
  fuel_l DOUBLE PRECISION NOT NULL, co2_kg DOUBLE PRECISION NOT NULL,
  epsilon DOUBLE PRECISION NOT NULL, k INTEGER NOT NULL, released_at TEXT NOT NULL,
  PRIMARY KEY (hour, cell))""",
    # one row, 'closed_before' ('' before the first release): ingest reads it FOR SHARE and a
    # release locks it FOR UPDATE, so a contribution is either in its hour's release or late
    "CREATE TABLE public_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO public_state VALUES ('closed_before', '')",
    "CREATE TABLE public_counters (name TEXT PRIMARY KEY, count BIGINT NOT NULL)",
)


# -- end of version 4 ----------------------------------------------------------------------------

#: Version 5: recipients of every role and sealed emergency profiles (issue 15).
_RECIPIENT_TABLES: Final = (
    """CREATE TABLE recipients (id TEXT PRIMARY KEY, role TEXT NOT NULL,
  added_at TEXT NOT NULL, public_key TEXT)""",
    f"""CREATE TABLE profiles (person_id TEXT NOT NULL REFERENCES persons(id) {_FK},
  responder TEXT NOT NULL, id TEXT NOT NULL, signed_at TEXT NOT NULL, sealed TEXT NOT NULL,
  statement TEXT NOT NULL, card_signature TEXT NOT NULL, card_certificate_sha256 TEXT NOT NULL,
  PRIMARY KEY (person_id, responder))""",
)


def _adding_tables(statements: tuple[str, ...]) -> Callable[[psycopg.Connection[Any]], None]:
    """The step that only creates new tables (``statements``), in the migration's transaction."""

    def step(conn: psycopg.Connection[Any]) -> None:
        for statement in statements:
            conn.execute(statement.encode())

    return step


#: The steps that bring a database from version N-1 to N, by N. Version 2 creates the first
#: PostgreSQL layout in an empty database; a later step alters the one before (add the same
#: change to ``sqlite_schema``).
STEPS: Final[dict[int, Callable[[psycopg.Connection[tuple[object, ...]]], None]]] = {
    2: _create_version_2,
    3: _adding_tables(_PERSON_TABLES),  # issue 14: the person's own acts
    4: _adding_tables(_PUBLIC_TABLES),  # issue 14: public statistics
    5: _adding_tables(_RECIPIENT_TABLES),  # issue 15: recipients of every role, profiles
}


def version(conn: psycopg.Connection[tuple[object, ...]]) -> int | None:
    """The database's schema version; 0 for an empty database (no table at all), ``None`` for
    a database with tables but no ``schema_version`` (not a registry)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL,"
                       " (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())"
                       ).fetchone()  # fmt: skip
    assert row is not None
    has_version, tables = row
    if not has_version:
        return 0 if tables == 0 else None
    found = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(str(found[0])) if found else 0


def migrate(conn: psycopg.Connection[tuple[object, ...]], target: int = SCHEMA_VERSION) -> int:
    """Bring the database (autocommit connection) to ``target``, one step per transaction;
    returns the version it had. A database newer than ``target`` is left as it is."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        start = version(conn)
    if start is None:
        raise ValueError("tables but no schema_version: not a registry database")
    current = start
    while current < target:
        step = current + 1 if current else min(STEPS)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            now = version(conn)
            if now != current:  # another process migrated meanwhile
                current = now or 0
                continue
            log.warning("migrating the registry database to schema version %d", step)
            STEPS[step](conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version VALUES (%s)", (step,))
        current = step
    return start
