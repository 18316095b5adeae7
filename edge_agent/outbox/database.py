"""The outbox's SQLite file: schema and its migrations, the state row, storage errors, reads.

The ``records`` table holds one row per unacked record (seq, kind, JWS, chain hash, size,
eviction priority); the single ``state`` row holds the chain head (last seq and hash), the
ack anchor, the size counters and the eviction and loss totals, updated in the same
transaction as the records, so the two never disagree after a crash.

The schema version is ``PRAGMA user_version`` (files of schema 1 predate it and carry it in
``state.schema_version``). Opening applies the migrations from the file's version up to
:data:`SCHEMA_VERSION`, each in its own transaction, and refuses a file newer than the code,
naming both versions. The file (and SQLite's ``-wal`` and ``-shm`` beside it, which take the
database's mode) is created 0600: it holds card certificates.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from msp_protocol.chain import Anchor

from ..errors import OutboxError

log = logging.getLogger(__name__)

#: The schema this code writes; see :data:`MIGRATIONS`.
SCHEMA_VERSION = 2
#: Mode of the outbox file: records hold card certificates (personal data).
FILE_MODE = 0o600


class OutboxFullError(OutboxError):
    """The size bound is reached and nothing left may be evicted; the record was refused."""


class OutboxStorageError(OutboxError):
    """The disk is full, read-only or failing; the record was refused, nothing stored is lost.

    ``reason`` is ``disk_full``, ``read_only``, ``io`` or (opening only) ``missing``.
    Appends resume by themselves once the storage accepts writes again.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OutboxSchemaError(OutboxError):
    """The file's schema is newer than this code knows (or is not an outbox schema)."""


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """Size bound, eviction low-water mark and re-send timeout.

    The default bound (256 MiB, 1M rows) suits an SD card holding weeks of trips. When an
    append would pass the bound, records are evicted down to ``low_water`` of it.
    """

    max_bytes: int = 256 * 1024 * 1024
    max_rows: int = 1_000_000
    low_water: float = 0.9
    resend_after_s: float = 30.0


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A committed record: seq, kind, the JWS to send and its chain hash."""

    seq: int
    kind: str
    jws: str
    hash: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds and what it gave up (totals since the outbox was created)."""

    device: str
    rows: int
    bytes: int
    first_seq: int | None
    last_seq: int
    acked_seq: int
    in_flight: int
    evicted_total: int
    refused_total: int
    max_rows: int
    max_bytes: int
    lost_total: int = 0


@dataclass(slots=True)
class State:
    """The state row: chain head, ack anchor, size counters, eviction totals."""

    device: str
    last_seq: int
    last_hash: str | None
    acked_seq: int
    acked_hash: str | None
    rows: int
    bytes: int
    evicted_total: int
    evicted_at_health: int
    lost_total: int


STATE_COLUMNS = tuple(State.__dataclass_fields__)


def storage_error(exc: sqlite3.Error, action: str, path: Path | None = None) -> OutboxError:
    """Wrap a SQLite error: full disk, read-only and I/O errors become ``OutboxStorageError``.

    SQLite reports a read-only file system and a missing directory alike (``CANTOPEN``); with
    ``path`` the two are told apart from the file system itself.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF  # the primary result code of an extended one
    if code == sqlite3.SQLITE_CANTOPEN and path is not None:
        parent = path.resolve().parent
        if not parent.is_dir():
            return OutboxStorageError(f"{action}: directory {parent} does not exist", "missing")
        if not os.statvfs(parent).f_flag & os.ST_RDONLY:
            return OutboxStorageError(f"{action}: cannot open ({exc})", "io")
        code = sqlite3.SQLITE_READONLY
    if code == sqlite3.SQLITE_FULL:
        return OutboxStorageError(f"{action}: the disk is full ({exc})", "disk_full")
    if code == sqlite3.SQLITE_READONLY:
        return OutboxStorageError(f"{action}: storage is read-only ({exc})", "read_only")
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return OutboxStorageError(f"{action}: storage I/O error ({exc})", "io")
    return OutboxError(f"{action}: {exc}")


def restrict_mode(path: Path) -> None:
    """Create ``path`` (empty) with mode 0600 if it is missing, and take group and other access
    away from it and its ``-wal``/``-shm`` if an older version left them wider."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        os.close(fd)
        for name in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            try:
                mode = os.stat(name).st_mode & 0o777
            except FileNotFoundError:
                continue
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return  # opening reports it (read-only storage) as the storage error it is
        raise storage_error(sqlite3.OperationalError(str(exc)), f"cannot open outbox {path}",
                            path) from None  # fmt: skip


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the outbox database in autocommit mode (transactions are explicit); a writable one
    is created 0600 (see :func:`restrict_mode`)."""
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        else:
            if path.parent.is_dir():
                restrict_mode(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        # A damaged byte must read as a damaged value, not fail the whole query.
        conn.text_factory = _lenient_text
    except sqlite3.Error as exc:
        raise storage_error(exc, f"cannot open outbox {path}", path) from None
    return conn


# -- the database ------------------------------------------------------------------------------


def _create_v1(conn: sqlite3.Connection) -> None:
    """Schema 1: the records table, its eviction index and the state row's table."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
        " jws TEXT NOT NULL, hash TEXT NOT NULL, size INTEGER NOT NULL, priority INTEGER)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_records_priority_seq ON records (priority, seq)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY, schema_version INTEGER,"
        " device TEXT, last_seq INTEGER, last_hash TEXT, acked_seq INTEGER, acked_hash TEXT,"
        " rows INTEGER, bytes INTEGER, evicted_total INTEGER, evicted_at_health INTEGER,"
        " public_key TEXT)"
    )


def _to_v2(conn: sqlite3.Connection) -> None:
    """Schema 2: ``state.lost_total`` counts seqs declared lost to a damaged outbox."""
    conn.execute("ALTER TABLE state ADD COLUMN lost_total INTEGER NOT NULL DEFAULT 0")


#: ``MIGRATIONS[n]`` takes a file from schema ``n`` to ``n + 1`` (0: a new, empty file).
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_create_v1, _to_v2)
assert len(MIGRATIONS) == SCHEMA_VERSION


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version of an open outbox file (0 for a new, empty file)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version:
        return int(version)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return 0
    if "state" not in tables:
        raise OutboxSchemaError(f"not an outbox: tables {', '.join(sorted(tables))}")
    row = conn.execute("SELECT schema_version FROM state WHERE id = 1").fetchone()
    return int(row[0]) if row and row[0] is not None else 1


def create_schema(conn: sqlite3.Connection, device: str, public_key: str) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` (creating it if new) in WAL mode with
    ``synchronous=FULL``, for ``device``, whose PEM public key is kept beside the records for
    ``msp-agent outbox verify``. Raises ``OutboxSchemaError`` for a file newer than the code."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise OutboxSchemaError(
            f"outbox schema version {version} is newer than this agent's {SCHEMA_VERSION}: "
            "upgrade msp-agent (a downgrade cannot read it)"
        )
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # no sqlite-utils: 3.7 MB
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA journal_size_limit = 4194304")  # truncate the WAL to 4 MiB after use
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](conn)
            if step == 0:
                conn.execute(
                    "INSERT OR IGNORE INTO state (id, schema_version, device, last_seq, rows,"
                    " bytes, acked_seq, evicted_total, evicted_at_health, public_key)"
                    " VALUES (1, 1, ?, 0, 0, 0, 0, 0, 0, ?)",
                    (device, public_key),
                )
            conn.execute("UPDATE state SET schema_version = ? WHERE id = 1", (step + 1,))
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if step:
            log.info("outbox schema migrated from version %d to %d", step, step + 1)


def read_identity(conn: sqlite3.Connection) -> tuple[str, str]:
    """Return the device id and the PEM public key the outbox was created for."""
    row = conn.execute("SELECT device, public_key FROM state WHERE id = 1").fetchone()
    if row is None:
        raise OutboxError("not an outbox: the state row is missing")
    return row[0], row[1]


def read_state(conn: sqlite3.Connection) -> State:
    """Return the state row."""
    row = conn.execute(f"SELECT {', '.join(STATE_COLUMNS)} FROM state WHERE id = 1").fetchone()  # noqa: S608
    if row is None:
        raise OutboxError("not an outbox: the state row is missing")
    return State(*row)


def write_state(conn: sqlite3.Connection, state: State) -> None:
    """Overwrite the state row (inside the caller's transaction)."""
    columns = ", ".join(f"{c} = ?" for c in STATE_COLUMNS)
    conn.execute(
        f"UPDATE state SET {columns} WHERE id = 1",  # noqa: S608
        tuple(getattr(state, c) for c in STATE_COLUMNS),
    )


def stats_of(
    conn: sqlite3.Connection, limits: OutboxLimits, in_flight: int = 0, refused: int = 0
) -> OutboxStats:
    """Return the stats of an outbox connection; in-flight and refusals are the caller's."""
    state = read_state(conn)
    (first,) = conn.execute("SELECT min(seq) FROM records").fetchone()
    return OutboxStats(
        device=state.device,
        rows=state.rows,
        bytes=state.bytes,
        first_seq=first,
        last_seq=state.last_seq,
        acked_seq=state.acked_seq,
        in_flight=in_flight,
        evicted_total=state.evicted_total,
        refused_total=refused,
        max_rows=limits.max_rows,
        max_bytes=limits.max_bytes,
        lost_total=state.lost_total,
    )


def iter_records(conn: sqlite3.Connection) -> Iterator[StoredRecord]:
    """Yield every stored record of an outbox connection in seq order."""
    try:
        for row in conn.execute("SELECT seq, kind, jws, hash FROM records ORDER BY seq"):
            yield StoredRecord(*row)
    except sqlite3.Error as exc:
        raise storage_error(exc, "cannot read records") from None


def read_anchor(conn: sqlite3.Connection) -> Anchor | None:
    """Return the last acked record of an outbox connection as a chain anchor, if known."""
    state = read_state(conn)
    if state.acked_seq and state.acked_hash:
        return Anchor(state.acked_seq, state.acked_hash)
    return None
