"""Opening an outbox file with checks, and writing the rebuilt file after damage.

:func:`open_checked` opens (or creates) the file and returns a :class:`Problem` when it cannot
be trusted: not a database, an unreadable or inconsistent state row, or a file older than the
chain state says (restored from a copy, or lost and re-created). :func:`write_rebuilt` makes
the new file from what :mod:`salvage` read; the outbox then appends the ``gap`` records and
:func:`swap_in` puts the new file in place, keeping the damaged one as ``<name>.damaged``.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from msp_protocol.bodies import Gap
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import Signer, record_hash, verify_record
from msp_protocol.records import MAX_RECORD_BYTES, checked

from ..errors import OutboxError
from .chainstate import ChainState
from .database import (
    OutboxSchemaError,
    State,
    connect,
    create_schema,
    read_identity,
    read_state,
    storage_error,
    write_state,
)
from .eviction import PRIORITY
from .salvage import Damage, Salvaged, gap_bodies, is_corrupt, lost_ranges

log = logging.getLogger(__name__)

#: ``prev`` of the gap record after lost seqs when no hash at all is known (32 zero bytes):
#: no JWS hashes to it, and the gap declares it as the hash of the last lost seq.
UNKNOWN_PREV: Final = "A" * 43


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an outbox file is rebuilt: gap ``reason`` (``outbox_lost``, ``damaged``) and what."""

    reason: str
    what: str


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def open_checked(path: Path, signer: Signer, chain: ChainState | None,
                 fresh: bool) -> tuple[sqlite3.Connection, Problem | None]:  # fmt: skip
    """Open the outbox at ``path`` (``fresh``: it was missing or empty) and check it.

    Raises ``OutboxError`` for a storage error, another device's file or a newer schema;
    damage is returned as a ``Problem`` with the connection (which may be unusable).
    """
    conn = connect(path)
    public_pem = signer.public_pem()
    try:
        create_schema(conn, signer.kid, public_pem)
        device, stored_pem = read_identity(conn)
    except OutboxSchemaError as exc:
        conn.close()
        raise OutboxSchemaError(f"{path}: {exc}") from None
    except OutboxError as exc:
        return conn, Problem("damaged", str(exc))
    except sqlite3.Error as exc:
        if is_corrupt(exc):
            return conn, Problem("damaged", f"not readable as an outbox ({exc})")
        conn.close()
        raise storage_error(exc, f"cannot set up outbox {path}", path) from None
    if device != signer.kid or stored_pem != public_pem:
        if _records_are_ours(conn, signer):
            return conn, Problem("damaged", "the device id or key stored in it is damaged, "
                                            "while its records are this device's")  # fmt: skip
        conn.close()
        raise OutboxError(
            f"{path} was written by {device!r} with another key than {signer.kid!r}'s; "
            "drain it or move it aside before changing the device key"
        )
    if fresh:
        if chain is not None and chain.reserved > 1:
            return conn, Problem(
                "outbox_lost",
                f"the file was missing or empty, but seqs up to {chain.reserved - 1} may have "
                "been used",
            )
        return conn, None
    try:
        return conn, _inspect(conn, chain)
    except (TypeError, ValueError) as exc:  # NULL or text where the state row has numbers
        return conn, Problem("damaged", f"state row unusable ({exc})")
    except sqlite3.Error as exc:
        if is_corrupt(exc):
            return conn, Problem("damaged", f"not readable ({exc})")
        conn.close()
        raise storage_error(exc, f"cannot check outbox {path}", path) from None


def _records_are_ours(conn: sqlite3.Connection, signer: Signer) -> bool:
    """True if the file's last records are signed by ``signer``: then a stored identity that
    differs from it is damage, not another device's outbox."""
    try:
        rows = conn.execute("SELECT jws FROM records ORDER BY seq DESC LIMIT 3").fetchall()
    except sqlite3.Error:
        return False
    for (jws,) in rows:
        try:
            verify_record(str(jws), lambda _kid: signer.public_key())
        except ProtocolError:
            continue
        return True
    return False


def _inspect(conn: sqlite3.Connection, chain: ChainState | None) -> Problem | None:
    """Check the state row against the records and the chain state; repair only counters."""
    state = read_state(conn)
    if not 0 <= state.acked_seq <= state.last_seq < 2**53:
        return Problem("damaged", f"state row: acked seq {state.acked_seq}, last {state.last_seq}")
    top, count = conn.execute("SELECT max(seq), count(*) FROM records").fetchone()
    if top is not None:
        row = conn.execute("SELECT jws, hash FROM records WHERE seq = ?", (top,)).fetchone()
        if top != state.last_seq or record_hash(row[0]) != state.last_hash:
            return Problem("damaged", f"state row says the chain ends at seq {state.last_seq}, "
                                      f"the records end at {top} with another hash")  # fmt: skip
    elif (state.last_seq, state.last_hash) != (state.acked_seq, state.acked_hash) and not (
        state.last_seq == state.acked_seq and state.acked_hash is None
    ):
        return Problem("damaged", f"no records, yet seqs {state.acked_seq + 1}.."
                                  f"{state.last_seq} are not acked")  # fmt: skip
    if chain is not None and state.last_seq < chain.reserved:
        older = state.last_seq < chain.seq or (
            state.last_seq == chain.seq and chain.hash is not None and chain.hash != state.last_hash
        )
        if older:
            return Problem("outbox_lost", f"the file ends at seq {state.last_seq}, but the chain "
                                          f"state saw seq {chain.seq}: an older copy")  # fmt: skip
    # Counting is cheap (an index); summing sizes reads the table, so only when off.
    if count != state.rows or not count * 100 <= state.bytes <= count * MAX_RECORD_BYTES:
        (size,) = conn.execute("SELECT coalesce(sum(size), 0) FROM records").fetchone()
        log.warning("outbox counters were %d rows, %d bytes; recounted %d, %d",
                    state.rows, state.bytes, count, size)  # fmt: skip
        conn.execute("BEGIN IMMEDIATE")
        state.rows, state.bytes = count, size
        write_state(conn, state)
        conn.execute("COMMIT")
    return None


def write_rebuilt(path: Path, signer: Signer, records: Iterable[Salvaged],
                  batch: int = 500) -> sqlite3.Connection:  # fmt: skip
    """Create the new file at ``path`` (replacing any leftover) and copy ``records`` into it as
    they come, ``batch`` rows per transaction; returns its open connection. The state row is
    the caller's to write."""
    for stale in (path, *_sidecars(path)):
        stale.unlink(missing_ok=True)
    conn = connect(path)
    try:
        create_schema(conn, signer.kid, signer.public_pem())
        rows = iter(records)
        while chunk := list(itertools.islice(rows, batch)):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR IGNORE INTO records (seq, kind, jws, hash, size, priority)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.record.seq, r.record.kind, r.record.jws, r.record.hash, len(r.record.jws),
                  PRIORITY.get(r.record.kind)) for r in chunk],
            )  # fmt: skip
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, f"cannot write rebuilt outbox {path}", path) from None
    return conn


def finish_rebuilt(conn: sqlite3.Connection, state: State) -> None:
    """Write the state row of the rebuilt file, its counters taken from its records."""
    conn.execute("BEGIN IMMEDIATE")
    state.rows, state.bytes = conn.execute(
        "SELECT count(*), coalesce(sum(size), 0) FROM records"
    ).fetchone()
    write_state(conn, state)
    conn.execute("COMMIT")


def plan_rebuilt(conn: sqlite3.Connection, device: str, *, chain: ChainState | None,
                 old: State | None, problem: Problem,
                 damage: tuple[Damage, ...]) -> list[Gap]:  # fmt: skip
    """Write the rebuilt file's state row (the chain head after the reserved seqs) and
    return the gap bodies declaring what is gone, each checked against its schema."""
    acked = [v for v in (chain.acked if chain else None,
                         old.acked_seq if old else None) if isinstance(v, int) and v >= 0]
    first = min(acked, default=0) + 1
    top, top_hash = last_record(conn)
    if chain is not None:
        unused = max(chain.reserved, top + 1)
    else:  # no chain state (a file of an older agent): the best that is known
        unused = max(top, old.last_seq if old and isinstance(old.last_seq, int) else 0) + 1
    prev = top_hash or (chain.hash if chain and chain.hash else UNKNOWN_PREV)
    ranges = lost_ranges(conn, first, unused, prev)
    reason = "damaged" if any(d.first for d in damage) else problem.reason
    lost = sum(r.last - r.first + 1 for r in ranges)
    state = State(
        device=device, last_seq=unused, last_hash=prev, acked_seq=first - 1,
        acked_hash=None, rows=0, bytes=0,
        evicted_total=max(old.evicted_total, 0) if old else 0,
        evicted_at_health=max(old.evicted_at_health, 0) if old else 0,
        lost_total=(max(old.lost_total, 0) if old else 0) + lost,
    )  # fmt: skip
    finish_rebuilt(conn, state)
    return [checked(body) for body in gap_bodies(reason, ranges)]


def last_record(conn: sqlite3.Connection) -> tuple[int, str | None]:
    """The highest seq of the rebuilt file and its chain hash (0, None if it is empty)."""
    row = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, None)


def swap_in(new: Path, path: Path) -> Path:
    """Put the closed file ``new`` in place of ``path``, keeping the old file (and its WAL) as
    ``<name>.damaged``; returns that name. Every step is a rename: a crash leaves either file
    in place, and the next open checks it again."""
    aside = path.with_name(path.name + ".damaged")
    try:
        for stale in (aside, *_sidecars(aside)):
            stale.unlink(missing_ok=True)
        if path.exists():
            try:
                os.link(path, aside)
            except OSError:  # a file system without hard links (FAT): keep a copy instead
                shutil.copyfile(path, aside)
            os.chmod(aside, 0o600)
        wal, shm = _sidecars(path)
        if wal.exists():  # never let the new file pick up the old file's WAL
            os.replace(wal, aside.with_name(aside.name + "-wal"))
        shm.unlink(missing_ok=True)
        os.replace(new, path)
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except OSError as exc:
        raise OutboxError(f"cannot put the rebuilt outbox in place of {path}: {exc}") from None
    return aside
