"""Reading a damaged outbox: every record that can still be read, and what could not be.

SQLite stores the ``records`` table as a B-tree keyed by seq. A damaged page (a flipped bit,
a zeroed block, a truncated file) makes any query that walks through it fail with
``SQLITE_CORRUPT``; the pages around it stay readable. :func:`scan` therefore reads in seq
order and, when the walk fails, probes seq by seq (``WHERE seq = ?``, one descent of the tree
each) until it reaches a readable page, and walks on from there. Every row it reads is
checked on its own: its JWS must be the record its seq column says, of this device, and
match its stored chain hash (or, failing that, carry a valid signature, so a damaged hash
column alone loses nothing). What fails is reported as :class:`Damage`, never raised.

What cannot be recovered: records on damaged pages, and the whole file when its first page
(the header and schema) is destroyed. What can: every record on an intact page, whatever
else in the file is damaged; :func:`lost_ranges` then names the seqs that are gone so a
``gap`` record can declare them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from msp_protocol.bodies import EvictedRange, Gap
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PublicKey, b64url_decode, record_hash, verify
from msp_protocol.records import KINDS

from ..errors import OutboxError
from .database import State, StoredRecord, read_identity, read_state
from .eviction import RANGES_PER_GAP

log = logging.getLogger(__name__)

#: Seqs probed past the last readable one when nothing says where the chain ends.
PROBE_PAST: Final = 4096
_COLUMNS: Final = "seq, kind, jws, hash"


@dataclass(frozen=True, slots=True)
class Damage:
    """Seqs ``first``..``last`` (both 0: the file as a whole) could not be read, and why."""

    first: int
    last: int
    what: str

    def __str__(self) -> str:
        if self.first == 0:
            return self.what
        seqs = f"seq {self.first}" if self.first == self.last else f"seqs {self.first}..{self.last}"
        return f"{seqs}: {self.what}"


@dataclass(frozen=True, slots=True)
class Salvaged:
    """An intact record read from a damaged file, with the ``prev`` it was signed with."""

    record: StoredRecord
    prev: str | None


@dataclass(frozen=True, slots=True)
class Scan:
    """What :func:`scan` read: intact records in seq order, the damage, and the state row and
    identity when they could be read."""

    records: tuple[Salvaged, ...]
    damage: tuple[Damage, ...]
    state: State | None
    identity: tuple[str, str] | None


def is_corrupt(exc: sqlite3.Error) -> bool:
    """True for SQLite's "the file is damaged" errors (as opposed to I/O, full, read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def check_row(seq: int, kind: str, jws: object, digest: object, *, device: str | None,
              key: PublicKey | None) -> Salvaged | str:  # fmt: skip
    """Return the intact record of a row, or what is wrong with it.

    A row whose JWS hashes to its stored chain hash is intact (a damaged JWS cannot match);
    if the hash differs, the JWS is taken only with a valid signature under ``key``.
    """
    if not isinstance(jws, str) or not jws.isascii() or jws.count(".") != 2:
        return "not a compact JWS"
    try:
        payload = json.loads(b64url_decode(jws.split(".")[1], "jws.payload"))
    except (ProtocolError, ValueError, RecursionError):
        return "JWS payload is not JSON"
    if not isinstance(payload, dict):
        return "JWS payload is not a record"
    prev, actual = payload.get("prev"), payload.get("kind")
    claimed = payload.get("seq")
    if claimed != seq:
        # A damaged seq column: the record is still good under its own seq if it verifies.
        if key is None or type(claimed) is not int or claimed < 1:
            return f"row holds a record of seq {claimed!r}"
        try:
            verify(jws, key)
        except ProtocolError:
            return f"row holds a record of seq {claimed!r} that does not verify"
        seq = claimed
    if (device is not None and payload.get("device") != device) or actual not in KINDS:
        return "not a record of this device"
    if not (prev is None or isinstance(prev, str)):
        return "prev is not a hash"
    hashed = record_hash(jws)
    if hashed != digest:
        if key is None:
            return "JWS does not match its stored chain hash"
        try:
            verify(jws, key)
        except ProtocolError as exc:
            return f"JWS does not match its stored chain hash, and {exc}"
        log.warning("outbox seq %d: stored chain hash was damaged; recomputed it", seq)
    return Salvaged(StoredRecord(seq, str(actual), jws, hashed), prev)


def _try(action: Callable[[], object]) -> tuple[object, str | None]:
    try:
        return action(), None
    except (sqlite3.Error, OutboxError, TypeError, ValueError) as exc:
        return None, str(exc)


class Reader:
    """Reads an outbox connection row by row: :attr:`state`, :attr:`identity` and the first
    :attr:`damage` are known at once; iterating yields every intact record (in seq order but
    for a damaged seq column) and adds to :attr:`damage`. Memory stays small: the rows go
    wherever the caller puts them."""

    def __init__(self, conn: sqlite3.Connection | None, device: str | None,
                 key: PublicKey | None, end_hint: int = 0) -> None:  # fmt: skip
        self._conn, self._device, self._key = conn, device, key
        self.damage: list[Damage] = []
        self.state: State | None = None
        self.identity: tuple[str, str] | None = None
        #: False when SQLite refuses the file as a whole (nothing to iterate).
        self.readable = False
        self._end = end_hint
        if conn is None:
            self.damage.append(Damage(0, 0, "the file cannot be opened as SQLite"))
            return
        _, error = _try(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone())
        if error:
            self.damage.append(Damage(0, 0, f"not readable as SQLite: {error}"))
            return
        self.readable = True
        state, error = _try(lambda: read_state(conn))
        if error:
            self.damage.append(Damage(0, 0, f"state row unreadable: {error}"))
        self.state = state if isinstance(state, State) else None
        identity, _ = _try(lambda: read_identity(conn))
        self.identity = identity if isinstance(identity, tuple) else None
        top, _ = _try(lambda: conn.execute("SELECT max(seq) FROM records").fetchone()[0])
        known = [end_hint, self.state.last_seq if self.state else 0, top or 0]
        self._end = max(v for v in known if isinstance(v, int))

    def __iter__(self) -> Iterator[Salvaged]:
        if self._conn is None or not self.readable:
            return
        for row in _walk(self._conn, self._end, self.damage):
            checked = check_row(*row, device=self._device, key=self._key)
            if isinstance(checked, str):
                seq = row[0] if row[0] >= 1 else 0
                what = checked if seq else f"a row of seq {row[0]}: {checked}"
                self.damage.append(Damage(seq, seq, what))
            else:
                yield checked

    def merged_damage(self) -> tuple[Damage, ...]:
        """The damage so far, repeats folded into one report with a count."""
        return _merged(self.damage)


def scan(conn: sqlite3.Connection | None, device: str | None, key: PublicKey | None,
         end_hint: int = 0) -> Scan:  # fmt: skip
    """Read everything readable of an outbox connection (``None``: the file could not even be
    opened) of ``device`` (``None``: the records' own), checking signatures with ``key`` where
    a hash does not match. ``end_hint`` is the highest seq that may have been written, if
    known elsewhere. Holds every record in memory: for inspection, not for rebuilding."""
    reader = Reader(conn, device, key, end_hint)
    found: dict[int, Salvaged] = {}
    for item in reader:
        found.setdefault(item.record.seq, item)
    return Scan(tuple(found[s] for s in sorted(found)), reader.merged_damage(), reader.state,
                reader.identity)  # fmt: skip


def _merged(damage: list[Damage]) -> tuple[Damage, ...]:
    """Repeats of one report (the zeroed cells of one page) as one report with a count."""
    merged: list[tuple[Damage, int]] = []
    for item in damage:
        if merged and merged[-1][0] == item:
            merged[-1] = (item, merged[-1][1] + 1)
        else:
            merged.append((item, 1))
    return tuple(
        d if n == 1 else Damage(d.first, d.last, f"{d.what} ({n} rows)") for d, n in merged
    )


def _walk(conn: sqlite3.Connection, end: int,
          damage: list[Damage]) -> Iterator[tuple[int, str, object, object]]:  # fmt: skip
    """Yield every readable row in seq order, noting unreadable stretches in ``damage``."""
    after = 0
    while True:
        try:
            cursor = conn.execute(
                f"SELECT {_COLUMNS} FROM records WHERE seq > ? ORDER BY seq",  # noqa: S608
                (after,),
            )
            for row in cursor:
                if end == 0 or row[0] <= end:  # a damaged seq column must not skip the rest
                    after = max(after, int(row[0]))
                yield int(row[0]), str(row[1]), row[2], row[3]
            return
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc) and "no such table" not in str(exc):
                raise
            what = f"unreadable ({exc})"
            if "no such table" in str(exc):
                damage.append(Damage(0, 0, f"the records table is gone ({exc})"))
                return
        # Probe seq by seq past the damaged stretch; stop at the first readable page.
        if end <= after:
            limit, what = after + PROBE_PAST, what + "; where the chain ends is unknown"
        else:
            limit = end
        seq = after + 1
        while seq <= limit:
            try:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM records WHERE seq = ?",  # noqa: S608
                    (seq,),
                ).fetchone()
            except sqlite3.DatabaseError:
                seq += 1
                continue
            break
        else:
            damage.append(Damage(after + 1, limit, what))
            return
        if seq > after + 1:
            damage.append(Damage(after + 1, seq - 1, what))
        if row is not None:
            yield seq, str(row[1]), row[2], row[3]
        after = seq


def repaired_copy(source: Path, dest: Path) -> None:
    """Copy a file SQLite refuses outright and mend, in the copy, what it checks before any
    table is read: a header page count beyond the end of a truncated file, a length that is
    not a whole number of pages, and the WAL flags (the copy is read without a WAL)."""
    shutil.copyfile(source, dest)
    os.chmod(dest, 0o600)
    with open(dest, "r+b") as handle:
        header = bytearray(handle.read(100))
        if len(header) < 100:
            return
        size = int.from_bytes(header[16:18], "big")
        page = 65536 if size == 1 else size
        if page < 512 or page > 65536 or page & (page - 1):
            page = 4096
            header[16:18] = page.to_bytes(2, "big")
        pages = -(-os.fstat(handle.fileno()).st_size // page)
        header[28:32] = pages.to_bytes(4, "big")
        header[18:20] = b"\x01\x01"
        handle.seek(0)
        handle.write(header)
        handle.truncate(pages * page)


@contextlib.contextmanager
def reading(path: Path, conn: sqlite3.Connection | None, device: str | None,
            key: PublicKey | None, end_hint: int = 0) -> Iterator[Reader]:  # fmt: skip
    """A :class:`Reader` of the open file at ``path``; if SQLite refuses the file as a whole
    (a truncated file, a damaged header), of a :func:`repaired_copy` of it instead, kept
    beside it until the block ends."""
    reader = Reader(conn, device, key, end_hint)
    if reader.readable or not path.is_file():
        yield reader
        return
    with tempfile.TemporaryDirectory(prefix=".salvage-", dir=path.parent) as tmp:
        copy = Path(tmp) / path.name
        try:
            repaired_copy(path, copy)
            copy_conn = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
        except (OSError, sqlite3.Error) as exc:
            log.warning("cannot read a repaired copy of %s: %s", path, exc)
            yield reader
            return
        copy_conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
        try:
            mended = Reader(copy_conn, device, key, end_hint)
            if not mended.readable:
                yield reader
                return
            mended.damage.insert(0, Damage(0, 0, f"{reader.damage[0]}; read from a copy "
                                                 "with its header mended"))  # fmt: skip
            yield mended
        finally:
            copy_conn.close()


def scan_file(path: Path, conn: sqlite3.Connection | None, device: str | None,
              key: PublicKey | None, end_hint: int = 0) -> Scan:  # fmt: skip
    """:func:`scan` through :func:`reading`: a file SQLite refuses is read from a mended copy."""
    with reading(path, conn, device, key, end_hint) as reader:
        found: dict[int, Salvaged] = {}
        for item in reader:
            found.setdefault(item.record.seq, item)
        return Scan(tuple(found[s] for s in sorted(found)), reader.merged_damage(),
                    reader.state, reader.identity)  # fmt: skip


def _declared(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """The seq ranges the gap records among the kept ones already declare evicted."""
    ranges: list[tuple[int, int]] = []
    for (jws,) in conn.execute("SELECT jws FROM records WHERE kind = 'gap'"):
        try:
            payload = json.loads(b64url_decode(str(jws).split(".")[1], "payload"))
            ranges += [(int(r["first"]), int(r["last"])) for r in payload["body"]["ranges"]]
        except (ProtocolError, ValueError, KeyError, TypeError, IndexError):
            continue
    return ranges


def _prev_of(conn: sqlite3.Connection, seq: int) -> str | None:
    row = conn.execute("SELECT jws FROM records WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        return None
    prev = json.loads(b64url_decode(str(row[0]).split(".")[1], "payload")).get("prev")
    return prev if isinstance(prev, str) else None


def lost_ranges(conn: sqlite3.Connection, first: int, unused: int,
                prev_of_gap: str) -> list[EvictedRange]:  # fmt: skip
    """The ranges of seqs ``first``..``unused`` that are neither records of ``conn`` (the
    rebuilt file, holding only intact records) nor declared evicted by one of its gap
    records: what a gap record must declare lost.

    ``unused`` was never signed (the chain state reserved it), so the last range always ends
    there, and its ``last_sha256`` is ``prev_of_gap``: the ``prev`` of the gap record that
    follows it. Every other range ends before an intact record, whose signed ``prev`` is the
    hash of the range's last seq.
    """
    declared = _declared(conn)
    ranges: list[EvictedRange] = []
    cursor = first
    present = conn.execute(
        "SELECT seq FROM records WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, unused)
    )
    for seq in itertools.chain((row[0] for row in present), [unused + 1]):
        for start, last in _missing_runs(cursor, seq - 1, declared):
            after = _prev_of(conn, last + 1) if last < unused else None
            ranges.append(EvictedRange(first=start, last=last,
                                       last_sha256=after or prev_of_gap, kinds={}))  # fmt: skip
        cursor = seq + 1
    return ranges


def _missing_runs(lo: int, hi: int,
                  declared: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:  # fmt: skip
    """Runs of lo..hi not covered by ``declared`` (which is small: a few gap records)."""
    if lo > hi:
        return
    cuts = sorted((max(a, lo), min(b, hi)) for a, b in declared if a <= hi and b >= lo)
    at = lo
    for a, b in cuts:
        if a > at:
            yield at, a - 1
        at = max(at, b + 1)
    if at <= hi:
        yield at, hi


def gap_bodies(reason: str, ranges: list[EvictedRange]) -> list[Gap]:
    """The gap bodies declaring ``ranges`` lost; the last range (ending at the unused seq)
    comes first, so the first gap record, right after it, declares its own ``prev``."""
    ordered = [*ranges[-1:], *ranges[:-1]]
    return [
        Gap(reason=reason, ranges=tuple(sorted(ordered[i : i + RANGES_PER_GAP],
                                               key=lambda r: r.first)))
        for i in range(0, len(ordered), RANGES_PER_GAP)
    ]  # fmt: skip
