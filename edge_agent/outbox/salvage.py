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


def scan(conn: sqlite3.Connection | None, device: str | None, key: PublicKey | None,
         end_hint: int = 0) -> Scan:  # fmt: skip
    """Read everything readable of an outbox connection (``None``: the file could not even be
    opened) of ``device`` (``None``: the records' own), checking signatures with ``key`` where
    a hash does not match. ``end_hint`` is the highest seq that may have been written, if
    known elsewhere."""
    if conn is None:
        return Scan((), (Damage(0, 0, "the file cannot be opened as SQLite"),), None, None)
    damage: list[Damage] = []
    _, error = _try(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone())
    if error:
        return Scan((), (Damage(0, 0, f"not readable as SQLite: {error}"),), None, None)
    state, error = _try(lambda: read_state(conn))
    if error:
        damage.append(Damage(0, 0, f"state row unreadable: {error}"))
    identity, _ = _try(lambda: read_identity(conn))
    top, _ = _try(lambda: conn.execute("SELECT max(seq) FROM records").fetchone()[0])
    known = [end_hint, state.last_seq if isinstance(state, State) else 0, top or 0]
    end = max(v for v in known if isinstance(v, int))
    found: dict[int, Salvaged] = {}
    for row in _walk(conn, end, damage):
        checked = check_row(*row, device=device, key=key)
        if isinstance(checked, str):
            seq = row[0] if row[0] >= 1 else 0
            what = checked if seq else f"a row of seq {row[0]}: {checked}"
            damage.append(Damage(seq, seq, what))
        else:
            found.setdefault(checked.record.seq, checked)
    return Scan(
        tuple(found[s] for s in sorted(found)),
        _merged(damage),
        state if isinstance(state, State) else None,
        identity if isinstance(identity, tuple) else None,
    )


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


def scan_file(path: Path, conn: sqlite3.Connection | None, device: str | None,
              key: PublicKey | None, end_hint: int = 0) -> Scan:  # fmt: skip
    """:func:`scan` the open file at ``path``; if SQLite refuses it as a whole (a truncated
    file, a damaged header), scan a :func:`repaired_copy` instead."""
    found = scan(conn, device, key, end_hint)
    if found.state is not None or found.records or not path.is_file():
        return found
    with tempfile.TemporaryDirectory(prefix=".salvage-", dir=path.parent) as tmp:
        copy = Path(tmp) / path.name
        try:
            repaired_copy(path, copy)
            copy_conn = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
        except (OSError, sqlite3.Error) as exc:
            log.warning("cannot read a repaired copy of %s: %s", path, exc)
            return found
        copy_conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
        try:
            mended = scan(copy_conn, device, key, end_hint)
        finally:
            copy_conn.close()
    if not mended.records and mended.identity is None:
        return found
    note = Damage(0, 0, f"{found.damage[0] if found.damage else 'refused by SQLite'}; "
                        "read from a copy with its header mended")  # fmt: skip
    return Scan(mended.records, (note, *mended.damage), mended.state, mended.identity)


class _Declared:
    """Seqs that gap records among the salvaged ones already declare evicted."""

    def __init__(self, records: tuple[Salvaged, ...]) -> None:
        self.ranges: list[tuple[int, int]] = []
        for item in records:
            if item.record.kind != "gap":
                continue
            try:
                payload = json.loads(b64url_decode(item.record.jws.split(".")[1], "payload"))
                ranges = payload["body"]["ranges"]
                self.ranges += [(int(r["first"]), int(r["last"])) for r in ranges]
            except (ProtocolError, ValueError, KeyError, TypeError):
                continue

    def covers(self, seq: int) -> bool:
        return any(lo <= seq <= hi for lo, hi in self.ranges)


def lost_ranges(records: tuple[Salvaged, ...], first: int, unused: int,
                prev_of_gap: str) -> list[EvictedRange]:  # fmt: skip
    """The ranges of seqs ``first``..``unused`` that are neither among ``records`` nor declared
    evicted by one of them: what a gap record must declare lost.

    ``unused`` was never signed (the chain state reserved it), so the last range always ends
    there, and its ``last_sha256`` is ``prev_of_gap``: the ``prev`` of the gap record that
    follows it. Every other range ends before an intact record, whose signed ``prev`` is the
    hash of the range's last seq.
    """
    present = {item.record.seq: item for item in records}
    declared = _Declared(records)
    ranges: list[EvictedRange] = []
    # Only seqs from the first missing one on matter; walk the present ones in order.
    candidates = sorted(s for s in present if first <= s <= unused)
    cursor = first
    for seq in [*candidates, unused + 1]:
        for missing in _missing_runs(cursor, seq - 1, declared):
            start, last = missing
            after = present.get(last + 1)
            digest = after.prev if after is not None and after.prev else prev_of_gap
            ranges.append(EvictedRange(first=start, last=last, last_sha256=digest, kinds={}))
        cursor = seq + 1
    return ranges


def _missing_runs(lo: int, hi: int, declared: _Declared) -> Iterator[tuple[int, int]]:
    """Runs of lo..hi not covered by ``declared`` (which is small: a few gap records)."""
    if lo > hi:
        return
    cuts = sorted((max(a, lo), min(b, hi)) for a, b in declared.ranges if a <= hi and b >= lo)
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
