"""The durable outbox: signed, hash-chained records in SQLite (WAL) until the registry acks them.

Durability: WAL with ``synchronous=FULL``, so a transaction is on stable storage (the WAL is
fsynced) before COMMIT returns; ``NORMAL`` would keep the file consistent but may lose the
last commits on power loss, which breaks the promise that a returned ``append`` survives it.
``append`` takes the write lock (``BEGIN IMMEDIATE``), allocates the next seq from the state
row, signs, chains and commits in one transaction; the signed bytes leave the process only
after that commit, through ``pending``. A crash before the commit leaves no trace: the seq was
never handed out, nothing signed under it exists anywhere, so taking it again cannot make two
contents for one seq; a crash after it loses nothing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from msp_protocol.bodies import Body, Gap, Health
from msp_protocol.chain import Anchor
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import Signer, record_hash
from msp_protocol.records import Record, format_ts, kind_of

from ..errors import OutboxError
from .database import (
    OutboxFullError,
    OutboxLimits,
    OutboxStats,
    State,
    StoredRecord,
    connect,
    create_schema,
    iter_records,
    read_anchor,
    read_identity,
    read_state,
    stats_of,
    storage_error,
    write_state,
)
from .eviction import PRIORITY, Need, Victim, choose_victims, gap_bodies

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append: its body, its timestamp (epoch seconds or wire form), its session."""

    body: Body
    ts: float | str
    session: str | None = None


class Outbox:
    """A device's durable outbox; thread-safe. Build it with ``Outbox.open``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        signer: Signer,
        vin: str,
        limits: OutboxLimits,
        clock: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._signer = signer
        self._vin = vin
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._refused_total = 0
        self._refused_at_health = 0
        self._refusing = False

    @classmethod
    def open(
        cls,
        path: Path,
        signer: Signer,
        vin: str,
        limits: OutboxLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Outbox:
        """Open or create the outbox at ``path`` for ``signer``'s device (``signer.kid``).

        Refuses a database that belongs to another device. ``clock`` only times re-sends.
        """
        conn = connect(path)
        try:
            public_pem = signer.public_pem()
            create_schema(conn, signer.kid, public_pem)
            device, stored_pem = read_identity(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise storage_error(exc, f"cannot set up outbox {path}", path) from None
        except OutboxError:
            conn.close()
            raise
        if device != signer.kid or stored_pem != public_pem:
            conn.close()
            raise OutboxError(
                f"{path} was written by {device!r} with another key than {signer.kid!r}'s; "
                "drain it or move it aside before changing the device key"
            )
        return cls(conn, signer, vin, limits or OutboxLimits(), clock)

    def close(self) -> None:
        """Close the database; committed records stay on disk."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -------------------------------------------------------------------------

    def append(self, body: Body, ts: float | str, session: str | None = None) -> StoredRecord:
        """Sign, chain and durably store one record; when this returns it survives power loss.

        Raises ``ProtocolError`` (invalid body), ``OutboxFullError`` or ``OutboxStorageError``;
        on any error nothing was stored and the outbox stays usable.
        """
        return self.append_many([NewRecord(body, ts, session)])[0]

    def append_many(self, items: Sequence[NewRecord]) -> list[StoredRecord]:
        """Append several records in one transaction (one fsync); all or none are stored."""
        if not items:
            return []
        with self._lock:
            try:
                stored = self._append_locked(items)
            except sqlite3.Error as exc:
                self._rollback()
                self._refuse(len(items))
                raise storage_error(exc, f"refused {len(items)} record(s)") from None
            except (OutboxError, ProtocolError):
                self._rollback()
                raise
            if self._refusing:
                log.warning("outbox accepts records again")
                self._refusing = False
            return stored

    def _refuse(self, count: int) -> None:
        self._refused_total += count
        if not self._refusing:
            log.error("outbox refuses records: storage does not accept writes")
            self._refusing = True

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("rollback failed (SQLite rolls back on its own): %s", exc)

    def _append_locked(self, items: Sequence[NewRecord]) -> list[StoredRecord]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        state = read_state(conn)
        work = replace(state)
        signed = [self._sign(work, item.body, item.ts, item.session) for item in items]
        victims, gaps = self._plan_eviction(
            state, len(signed), sum(len(r.jws) for r in signed), items[0].ts
        )
        if victims:
            # Rare path: the gap markers take the next seqs, so the new records are re-signed.
            work = state
            self._evict(work, victims)
            signed = [self._sign(work, body, items[0].ts, None) for body in gaps]
            signed += [self._sign(work, item.body, item.ts, item.session) for item in items]
        for record in signed:
            conn.execute(
                "INSERT INTO records (seq, kind, jws, hash, size, priority) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (record.seq, record.kind, record.jws, record.hash, len(record.jws),
                 PRIORITY.get(record.kind)),
            )  # fmt: skip
        work.rows += len(signed)
        work.bytes += sum(len(r.jws) for r in signed)
        # A stored health record has reported what its body counts (see health_body).
        reports = [item.body for item in items if isinstance(item.body, Health)]
        work.evicted_at_health += sum(h.evicted for h in reports)
        write_state(conn, work)
        conn.execute("COMMIT")
        self._refused_at_health += sum(h.refused for h in reports)
        return signed[len(signed) - len(items) :]  # the gap markers are not the caller's

    def _plan_eviction(
        self, state: State, add_rows: int, add_bytes: int, ts: float | str
    ) -> tuple[list[Victim], list[Gap]]:
        """Choose victims so the new records and the gap markers naming them fit the bound.

        Once over the bound, evict down to ``limits.low_water`` of it, so a full outbox writes
        one gap marker per that much churn rather than one per append (markers are kept).
        """
        limits = self.limits
        if state.rows + add_rows <= limits.max_rows and state.bytes + add_bytes <= limits.max_bytes:
            return [], []
        for target in (limits.low_water, 1.0):
            reserve_rows, reserve_bytes = 0, 0
            for _ in range(4):
                need = Need(
                    rows=state.rows + add_rows + reserve_rows - int(limits.max_rows * target),
                    bytes=state.bytes + add_bytes + reserve_bytes - int(limits.max_bytes * target),
                )
                victims = choose_victims(self._conn, need)
                if victims is None:
                    break
                gaps = gap_bodies(victims)
                scratch = replace(state)
                sizes = [len(self._sign(scratch, body, ts, None).jws) for body in gaps]
                if len(sizes) <= reserve_rows and sum(sizes) <= reserve_bytes:
                    return victims, gaps
                reserve_rows, reserve_bytes = len(sizes), sum(sizes) + 64
        raise OutboxFullError(
            f"outbox bound reached ({state.rows} rows, {state.bytes} bytes; limits "
            f"{limits.max_rows} rows, {limits.max_bytes} bytes) and only records that are "
            "never evicted remain; record refused"
        )

    def _sign(self, state: State, body: Body, ts: float | str, session: str | None) -> StoredRecord:
        seq = state.last_seq + 1
        record = Record(
            kind=kind_of(body),
            device=self._signer.kid,
            vin=self._vin,
            seq=seq,
            prev=state.last_hash,
            ts=ts if isinstance(ts, str) else format_ts(ts),
            session=session,
            body=body,
        )
        token = self._signer.sign_record(record)
        state.last_seq, state.last_hash = seq, record_hash(token)
        return StoredRecord(seq, record.kind, token, state.last_hash)

    def _evict(self, state: State, victims: list[Victim]) -> None:
        seqs = [(v.seq,) for v in victims]
        self._conn.executemany("DELETE FROM records WHERE seq = ?", seqs)
        state.rows -= len(victims)
        state.bytes -= sum(v.size for v in victims)
        state.evicted_total += len(victims)
        for victim in victims:
            self._in_flight.pop(victim.seq, None)
        log.warning(
            "outbox bound reached: evicted %d record(s), seqs %d..%d",
            len(victims),
            min(v.seq for v in victims),
            max(v.seq for v in victims),
        )

    # -- sending and acks ------------------------------------------------------------------

    def pending(self, limit: int = 100) -> list[StoredRecord]:
        """Return up to ``limit`` unacked records due for sending, in seq order, and start their
        re-send timers: a record comes back only after ``limits.resend_after_s`` without ack."""
        now = self._clock()
        due: list[StoredRecord] = []
        with self._lock:
            try:
                cursor = self._conn.execute("SELECT seq, kind, jws, hash FROM records ORDER BY seq")
                for row in cursor:
                    sent = self._in_flight.get(row[0])
                    if sent is None or now - sent >= self.limits.resend_after_s:
                        due.append(StoredRecord(*row))
                        if len(due) >= limit:
                            break
                cursor.close()
            except sqlite3.Error as exc:
                raise storage_error(exc, "cannot read pending records") from None
            for record in due:
                self._in_flight[record.seq] = now
        return due

    def ack(self, seq: int) -> int:
        """Apply the registry's cumulative ack: delete every record with a seq <= ``seq``.

        Returns how many records were deleted; a repeated or older ack deletes nothing. Raises
        ``OutboxError`` for an ack beyond the last seq ever written (not this device's records).
        """
        with self._lock:
            try:
                return self._ack_locked(seq)
            except sqlite3.Error as exc:
                self._rollback()
                raise storage_error(exc, f"cannot apply ack {seq}") from None

    def _ack_locked(self, seq: int) -> int:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        state = read_state(conn)
        if seq > state.last_seq:
            conn.execute("ROLLBACK")
            raise OutboxError(f"ack {seq} is beyond the last seq written ({state.last_seq})")
        if seq <= state.acked_seq:
            conn.execute("ROLLBACK")
            return 0
        rows, size = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM records WHERE seq <= ?", (seq,)
        ).fetchone()
        row = conn.execute("SELECT hash FROM records WHERE seq = ?", (seq,)).fetchone()
        conn.execute("DELETE FROM records WHERE seq <= ?", (seq,))
        state.acked_seq, state.acked_hash = seq, row[0] if row else None
        state.rows -= rows
        state.bytes -= size
        write_state(conn, state)
        conn.execute("COMMIT")
        for done in [s for s in self._in_flight if s <= seq]:
            del self._in_flight[done]
        log.debug("ack %d removed %d record(s)", seq, rows)
        return int(rows)

    # -- reading ---------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Return what the outbox holds now."""
        with self._lock:
            try:
                return stats_of(self._conn, self.limits, len(self._in_flight), self._refused_total)
            except sqlite3.Error as exc:
                raise storage_error(exc, "cannot read outbox state") from None

    def health_body(
        self, uptime_s: float, frames_per_s: float, errors: dict[str, int] | None = None
    ) -> Health:
        """Return a ``health`` body with the queue depth, and the evictions and refusals not yet
        reported; appending it marks exactly those counts as reported."""
        with self._lock:
            state = read_state(self._conn)
            return Health(
                uptime_s=uptime_s,
                queue_depth=state.rows,
                queue_bytes=state.bytes,
                frames_per_s=frames_per_s,
                errors=dict(errors or {}),
                evicted=state.evicted_total - state.evicted_at_health,
                refused=self._refused_total - self._refused_at_health,
            )

    def records(self) -> Iterator[StoredRecord]:
        """Yield every stored record in seq order (for export and verification)."""
        return iter_records(self._conn)

    def anchor(self) -> Anchor | None:
        """Return the last acked record as a chain anchor, if its hash is known."""
        return read_anchor(self._conn)
