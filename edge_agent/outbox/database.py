"""The outbox's SQLite file: schema, the state row, storage-error mapping, read helpers.

The ``records`` table holds one row per unacked record (seq, kind, JWS, chain hash, size,
eviction priority); the single ``state`` row holds the chain head (last seq and hash), the
ack anchor, the size counters and the eviction totals, updated in the same transaction as
the records, so the two never disagree after a crash.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from msp_protocol.chain import Anchor

from ..errors import OutboxError

SCHEMA_VERSION = 1


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


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the outbox database in autocommit mode (transactions are explicit)."""
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
    except sqlite3.Error as exc:
        raise storage_error(exc, f"cannot open outbox {path}", path) from None
    return conn


# -- the database ------------------------------------------------------------------------------


def create_schema(conn: sqlite3.Connection, device: str, public_key: str) -> None:
    """Create the tables (if new) in WAL mode with ``synchronous=FULL`` for ``device``, whose
    PEM public key is kept beside the records for ``msp-agent outbox verify``."""
    db = sqlite_utils.Database(conn)
    if db.journal_mode != "wal":
        db.enable_wal()
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA journal_size_limit = 4194304")  # truncate the WAL to 4 MiB after use
    db.table("records").create(
        {"seq": int, "kind": str, "jws": str, "hash": str, "size": int, "priority": int},
        pk="seq",
        not_null={"kind", "jws", "hash", "size"},
        if_not_exists=True,
    )
    db.table("records").create_index(["priority", "seq"], if_not_exists=True)
    db.table("state").create(
        {"id": int, "schema_version": int, "device": str, "last_seq": int, "last_hash": str,
         "acked_seq": int, "acked_hash": str, "rows": int, "bytes": int, "evicted_total": int,
         "evicted_at_health": int, "public_key": str},
        pk="id",
        if_not_exists=True,
    )  # fmt: skip
    conn.execute(
        "INSERT OR IGNORE INTO state VALUES (1, ?, ?, 0, NULL, 0, NULL, 0, 0, 0, 0, ?)",
        (SCHEMA_VERSION, device, public_key),
    )


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
