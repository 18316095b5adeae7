"""The durable outbox: signed, hash-chained records in SQLite (WAL) until the registry acks them.

Durability: WAL with ``synchronous=FULL``, so a transaction is on stable storage (the WAL is
fsynced) before COMMIT returns; ``NORMAL`` would keep the file consistent but may lose the
last commits on power loss, which breaks the promise that a returned ``append`` survives it.
``append`` takes the write lock (``BEGIN IMMEDIATE``), allocates the next seq from the state
row, signs, chains and commits in one transaction; the signed bytes leave the process only
after that commit, through ``pending``. A crash before the commit leaves no trace: the seq was
never handed out, nothing signed under it exists anywhere, so taking it again cannot make two
contents for one seq; a crash after it loses nothing.

The file itself may still be lost or damaged (SD cards fail, files get deleted or restored
from old copies). So seqs are also reserved in blocks in a chain-state file apart from the
database (``chainstate``), before they are signed; and the outbox checks its file when it
opens and whenever a read fails as damaged. A file that is missing, not a database,
inconsistent or older than the chain state is *rebuilt*: every intact record is copied into
a new file (``salvage``), the damaged one is kept aside as ``<name>.damaged``, and the chain
continues after the reserved seqs with a ``gap`` record (reason ``outbox_lost`` or
``damaged``) declaring every seq that is gone. No seq is ever signed twice, so the registry
accepts the continuation and keeps its ``seq_reused`` alarm for real forks.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from msp_protocol.bodies import Body, Gap, Health
from msp_protocol.chain import Anchor
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import Signer, record_hash
from msp_protocol.records import Record, checked, format_ts, kind_of

from ..errors import OutboxError
from . import recovery, salvage
from .chainstate import ChainState, ChainStateError, ChainStateFile, chain_state_path
from .database import (
    OutboxFullError,
    OutboxLimits,
    OutboxStats,
    OutboxStorageError,
    State,
    StoredRecord,
    connect,
    create_schema,
    read_anchor,
    read_state,
    stats_of,
    storage_error,
    write_state,
)
from .eviction import PRIORITY, Need, Victim, choose_victims, gap_bodies
from .salvage import Damage, check_row, is_corrupt

T = TypeVar("T")


#: Rows per read of :meth:`Outbox.records`.
_CHUNK = 500


class _Damaged(Exception):  # noqa: N818 - internal signal, never leaves this module
    """A row read for sending is not the intact record it should be."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append: its body, its timestamp (epoch seconds or wire form), its session.

    The body is signed as it is: it must have been checked when it was made (as every body of
    ``body_from_json``, ``checked`` and the builders of ``edge_agent.records`` is); the outbox
    checks the envelope it writes around it, not the body a second time.
    """

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
        *,
        path: Path | None = None,
        chain: ChainStateFile | None = None,
    ) -> None:
        self._conn = conn
        self._signer = signer
        self._vin = vin
        self.limits = limits
        self._clock = clock
        self._path = path
        self._chain_file = chain
        self._chain: ChainState | None = None
        self._base: State | None = None  # the committed state at the start of a transaction
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._refused_total = 0
        self._refused_at_health = 0
        self._refusing = False
        #: What the last rebuild found damaged (empty if the file was never rebuilt).
        self.damage: tuple[Damage, ...] = ()
        self._opened = self._file_id()

    @classmethod
    def open(
        cls,
        path: Path,
        signer: Signer,
        vin: str,
        limits: OutboxLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        chain_path: Path | None = None,
    ) -> Outbox:
        """Open or create the outbox at ``path`` for ``signer``'s device (``signer.kid``).

        ``chain_path`` is the chain-state file (default ``<path>.chain``). A missing, damaged
        or rolled-back file is rebuilt (see the module docstring); the result is in
        :attr:`damage`. Refuses a database that belongs to another device, and a file of a
        newer schema. ``clock`` only times re-sends.
        """
        chain_file = ChainStateFile(chain_path or chain_state_path(path))
        chain_error: ChainStateError | None = None
        try:
            chain = chain_file.load()
        except ChainStateError as exc:
            chain, chain_error = None, exc
        fresh = not path.exists() or path.stat().st_size == 0
        conn, problem = recovery.open_checked(path, signer, chain, fresh)
        if chain is not None and chain.device != signer.kid:
            conn.close()
            raise OutboxError(
                f"{chain_file.path} holds the chain of {chain.device!r}, not {signer.kid!r}; "
                "move it aside with the outbox before changing the device"
            )
        if chain_error is not None and (fresh or problem is not None):
            conn.close()
            what = "missing or empty" if problem is None else f"damaged ({problem.what})"
            raise OutboxError(
                f"{path} is {what} and {chain_error}: where the chain stands is unknown, and "
                "starting again could reuse seqs; see docs/records.md, 'A lost or damaged outbox'"
            )
        box = cls(conn, signer, vin, limits or OutboxLimits(), clock, path=path, chain=chain_file)
        box._chain = chain
        if problem is None:
            if chain_error is not None:
                log.warning("%s; rewriting it from the outbox, which is intact", chain_error)
            try:
                box._save_chain()
            except (OutboxStorageError, sqlite3.Error) as exc:  # reading and sending work
                log.warning("chain state not updated at open: %s", exc)
            except BaseException:
                conn.close()
                raise
            return box
        log.error("outbox %s: %s; rebuilding it", path, problem.what)
        with box._lock:
            try:
                box._rebuild(problem)
            except sqlite3.Error as exc:
                raise storage_error(exc, f"cannot rebuild outbox {path}", path) from None
        return box

    @property
    def path(self) -> Path | None:
        """The outbox file (``None`` for an in-memory one)."""
        return self._path

    def close(self) -> None:
        """Close the database and note the exact chain head in the chain state; committed
        records stay on disk."""
        with self._lock:
            try:
                self._save_chain()
            except (OutboxError, sqlite3.Error) as exc:
                log.warning("chain state not updated at close: %s", exc)
            self._conn.close()

    # -- chain state -----------------------------------------------------------------------

    def _disk_chain(self) -> ChainState | None:
        """The chain state on disk, if readable and this device's: another process (an
        uplink beside the agent) may have reserved further."""
        assert self._chain_file is not None
        try:
            disk = self._chain_file.load()
        except ChainStateError:
            return None
        return disk if disk is not None and disk.device == self._signer.kid else None

    def _save_chain(self) -> None:
        """Write the committed head to the chain state, never lowering the reservation on
        disk; under the database's write lock, so two processes cannot interleave."""
        if self._chain_file is None:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            state = read_state(self._conn)
            disk = self._disk_chain()
            # Nothing reserved yet: the next seq signed reserves a block.
            reserved = max(self._chain.reserved if self._chain else 0,
                           disk.reserved if disk else 0, state.last_seq + 1)  # fmt: skip
            chain = ChainState(self._signer.kid, reserved, state.last_seq, state.last_hash,
                               state.acked_seq)  # fmt: skip
            self._chain_file.save(chain)
            self._chain = chain
        finally:
            self._conn.execute("ROLLBACK")

    def _reserve(self, seq: int) -> None:
        """Make sure ``seq`` is reserved (and one seq beyond it) before it is signed; called
        inside the append's transaction, which holds the write lock."""
        if self._chain_file is None or (self._chain is not None and seq < self._chain.reserved):
            return
        disk = self._disk_chain()
        if disk is not None and seq < disk.reserved:
            self._chain = disk  # another process reserved it already
            return
        base = self._base
        chain = self._chain or ChainState(self._signer.kid, 0, 0, None, 0)
        self._chain = self._chain_file.reserve(
            chain, seq, base.last_seq if base else 0, base.last_hash if base else None,
            base.acked_seq if base else 0,
        )  # fmt: skip

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- another process may have rebuilt the file -----------------------------------------

    def _file_id(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            info = os.stat(self._path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _follow(self) -> bool:
        """If another process rebuilt the file (a new file under the name), reopen it; returns
        whether it did. Writers call it with the write lock held: the rebuilding process holds
        the old file's lock until the new one is in place, so no write goes to the old file."""
        if self._path is None or self._file_id() == self._opened:
            return False
        log.warning("outbox %s was replaced by another process; reopening it", self._path)
        self._rollback()
        self._conn.close()
        self._conn = connect(self._path)
        create_schema(self._conn, self._signer.kid, self._signer.public_pem())
        self._opened = self._file_id()
        self._in_flight.clear()
        self._chain = self._disk_chain() if self._chain_file else None
        return True

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE`` on the current file (reopened if another process replaced it)."""
        self._conn.execute("BEGIN IMMEDIATE")
        if self._follow():
            self._conn.execute("BEGIN IMMEDIATE")

    # -- rebuilding a damaged file -----------------------------------------------------------

    def _rebuild(self, problem: recovery.Problem) -> None:
        """Replace the damaged file by one holding every intact record, then declare every
        seq that is gone in gap records after the reserved ones (caller holds the lock)."""
        assert self._path is not None
        path, chain = self._path, self._chain
        new = path.with_name(path.name + ".rebuild")
        end = chain.reserved - 1 if chain else 0
        key = self._signer.public_key()
        self._rollback()
        try:  # keep other processes from writing to the old file until the new one is in
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.warning("cannot lock the damaged outbox %s: %s", path, exc)
        with salvage.reading(path, self._conn, self._signer.kid, key, end) as reader:
            conn = recovery.write_rebuilt(new, self._signer, reader)
            damage = reader.merged_damage()
            old = reader.state if reader.state and reader.state.last_seq else None  # None: new
        try:
            gaps = recovery.plan_rebuilt(conn, self._signer.kid, chain=self._chain, old=old,
                                         problem=problem, damage=damage)
        except BaseException:
            conn.close()
            raise
        damaged_conn, self._conn = self._conn, conn
        try:
            now = time.time()
            self._append_locked([NewRecord(g, now) for g in gaps])
        except BaseException:
            self._rollback()
            conn.close()
            self._conn = damaged_conn
            self._rollback()
            raise
        conn.close()
        aside = recovery.swap_in(new, path)
        try:  # releases the old file's lock: other processes now find the new file
            damaged_conn.close()
        except sqlite3.Error as exc:
            log.warning("closing the damaged outbox: %s", exc)
        self._conn = connect(path)
        self._opened = self._file_id()
        create_schema(self._conn, self._signer.kid, self._signer.public_pem())
        self._save_chain()
        self._in_flight = {
            s: t for s, t in self._in_flight.items()
            if self._conn.execute("SELECT 1 FROM records WHERE seq = ?", (s,)).fetchone()
        }  # fmt: skip
        self.damage = (salvage.Damage(0, 0, problem.what), *damage)
        stats = stats_of(self._conn, self.limits)
        log.error(
            "outbox %s rebuilt (%s): %d record(s) kept, %d seq(s) declared lost in all; the "
            "damaged file is kept as %s", path, problem.what, stats.rows, stats.lost_total, aside,
        )  # fmt: skip
        for item in damage:
            log.error("outbox %s damage: %s", path, item)

    def _recovering(self, action: Callable[[], T]) -> T:
        """Run ``action`` (under the lock); if it finds the file damaged, rebuild the file and
        run it once more."""
        try:
            return action()
        except _Damaged as exc:
            problem = recovery.Problem("damaged", str(exc))
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc) or self._path is None:
                raise
            problem = recovery.Problem("damaged", f"a read failed: {exc}")
        self._rollback()
        log.error("outbox %s: %s; rebuilding it", self._path, problem.what)
        self._rebuild(problem)
        try:
            return action()
        except _Damaged as exc:
            raise OutboxError(f"outbox {self._path} still damaged after a rebuild: {exc}") from None

    # -- appending -------------------------------------------------------------------------

    def append(self, body: Body, ts: float | str, session: str | None = None) -> StoredRecord:
        """Sign, chain and durably store one record; when this returns it survives power loss.

        ``body`` must be checked already (see ``NewRecord``). Raises ``ProtocolError`` (an
        invalid envelope: a session id or timestamp the protocol refuses), ``OutboxFullError``
        or ``OutboxStorageError``; on any error nothing was stored and the outbox stays usable.
        """
        return self.append_many([NewRecord(body, ts, session)])[0]

    def append_many(self, items: Sequence[NewRecord]) -> list[StoredRecord]:
        """Append several records in one transaction (one fsync); all or none are stored."""
        if not items:
            return []
        with self._lock:
            try:
                stored = self._recovering(lambda: self._append_locked(items))
            except sqlite3.Error as exc:
                self._rollback()
                self._refuse(len(items))
                raise storage_error(exc, f"refused {len(items)} record(s)") from None
            except OutboxStorageError:  # the chain state could not reserve the seqs
                self._rollback()
                self._refuse(len(items))
                raise
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
        self._begin()
        conn = self._conn
        state = read_state(conn)
        self._base = state
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
        conn.executemany(
            "INSERT INTO records (seq, kind, jws, hash, size, priority) VALUES (?, ?, ?, ?, ?, ?)",
            [(r.seq, r.kind, r.jws, r.hash, len(r.jws), PRIORITY.get(r.kind)) for r in signed],
        )
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
                gaps = [checked(body) for body in gap_bodies(victims)]  # made from rows read
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
        self._reserve(seq)
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
        token = self._signer.sign_record(record, body_checked=True)
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
                due = self._recovering(lambda: self._due(now, limit))
            except sqlite3.Error as exc:
                raise storage_error(exc, "cannot read pending records") from None
            for record in due:
                self._in_flight[record.seq] = now
        return due

    def _due(self, now: float, limit: int) -> list[StoredRecord]:
        self._follow()
        due: list[StoredRecord] = []
        cursor = self._conn.execute("SELECT seq, kind, jws, hash FROM records ORDER BY seq")
        for seq, kind, jws, digest in cursor:
            sent = self._in_flight.get(seq)
            if sent is None or now - sent >= self.limits.resend_after_s:
                checked = check_row(seq, kind, jws, digest, device=self._signer.kid, key=None)
                if isinstance(checked, str) or checked.record.kind != kind:
                    cursor.close()
                    raise _Damaged(f"seq {seq}: {checked if isinstance(checked, str) else 'kind'}")
                due.append(checked.record)
                if len(due) >= limit:
                    break
        cursor.close()
        return due

    def ack(self, seq: int) -> int:
        """Apply the registry's cumulative ack: delete every record with a seq <= ``seq``.

        Returns how many records were deleted; a repeated or older ack deletes nothing. Raises
        ``OutboxError`` for an ack beyond the last seq ever written (not this device's records).
        """
        with self._lock:
            try:
                return self._recovering(lambda: self._ack_locked(seq))
            except sqlite3.Error as exc:
                self._rollback()
                raise storage_error(exc, f"cannot apply ack {seq}") from None

    def _ack_locked(self, seq: int) -> int:
        self._begin()
        conn = self._conn
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
                return self._recovering(self._stats)
            except sqlite3.Error as exc:
                raise storage_error(exc, "cannot read outbox state") from None

    def _stats(self) -> OutboxStats:
        self._follow()
        return stats_of(self._conn, self.limits, len(self._in_flight), self._refused_total)

    def health_body(
        self, uptime_s: float, frames_per_s: float, errors: dict[str, int] | None = None
    ) -> Health:
        """Return a ``health`` body with the queue depth, and the evictions and refusals not yet
        reported; appending it marks exactly those counts as reported. ``errors`` are the
        caller's: check the body (``checked``) before appending it, as ``RecordWriter`` does."""
        with self._lock:
            try:
                state = self._recovering(lambda: read_state(self._conn))
            except sqlite3.Error as exc:
                raise storage_error(exc, "cannot read outbox state") from None
            return Health(
                uptime_s=uptime_s,
                queue_depth=state.rows,
                queue_bytes=state.bytes,
                frames_per_s=frames_per_s,
                errors=dict(errors or {}),
                evicted=state.evicted_total - state.evicted_at_health,
                refused=self._refused_total - self._refused_at_health,
            )

    def records(self, kind: str | None = None, after: int = 0) -> Iterator[StoredRecord]:
        """Yield every stored record (of ``kind`` only, if given; of seqs above ``after``) in
        seq order, read in chunks so a full outbox is never held in memory at once."""
        while True:
            with self._lock:
                try:
                    chunk = self._recovering(functools.partial(self._chunk, after, kind))
                except sqlite3.Error as exc:
                    raise storage_error(exc, "cannot read records") from None
            yield from chunk
            if len(chunk) < _CHUNK:
                return
            after = chunk[-1].seq

    def _chunk(self, after: int, kind: str | None) -> list[StoredRecord]:
        self._follow()
        cursor = self._conn.execute(
            "SELECT seq, kind, jws, hash FROM records WHERE seq > ? AND (? IS NULL OR kind = ?)"
            " ORDER BY seq LIMIT ?",
            (after, kind, kind, _CHUNK),
        )
        return [StoredRecord(*row) for row in cursor]

    def anchor(self) -> Anchor | None:
        """Return the last acked record as a chain anchor, if its hash is known."""
        return read_anchor(self._conn)
