"""Verify a device's chain of records: signatures, contiguous seqs, prev hashes, gap markers.

Seqs rise by exactly one from 1; each record's ``prev`` is the hash of the one before
(``jws.record_hash``). A seq may be missing only if a ``gap`` record in the same set declares
it evicted; the gap carries the hash of the last evicted seq of each range, so the record after
a range still links. Anything else is a break, and the verifier names the first one by seq.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from .bodies import Gap
from .errors import ChainError, ProtocolError, SignatureError
from .jws import KeyResolver, b64url_decode, record_hash, split, verify
from .records import Record, parse_record


@dataclass(frozen=True, slots=True)
class Anchor:
    """The last record before the ones being checked (e.g. the last one the registry acked)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """A chain that verified: its device, its seq range, how many records and evicted seqs."""

    device: str
    first_seq: int
    last_seq: int
    records: int
    evicted: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class _Entry:
    record: Record
    token: str
    hash: str


@dataclass(frozen=True, slots=True)
class _Break:
    seq: int
    reason: str
    message: str


class _Evictions:
    """The seq ranges declared evicted by gap records, for coverage and hash look-ups."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.last_hash: dict[int, str] = {}

    def add(self, first: int, last: int, last_hash: str) -> None:
        bisect.insort(self.ranges, (first, last))
        self.last_hash[last] = last_hash

    def covers(self, first: int, last: int) -> int | None:
        """Return the first seq in first..last not declared evicted, or None if all are."""
        want = first
        for lo, hi in self.ranges:
            if lo > want:
                break
            want = max(want, hi + 1)
            if want > last:
                return None
        return want if want <= last else None

    def total(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)


def _decode(tokens: Iterable[str]) -> tuple[list[_Entry], list[_Break]]:
    entries: dict[int, _Entry] = {}
    breaks: list[_Break] = []
    for position, token in enumerate(tokens, start=1):
        try:
            # Only the payload is needed to place the record; a broken header or signature
            # is reported at the record's own seq when its signature is checked.
            parts = token.split(".") if isinstance(token, str) and token.isascii() else []
            if len(parts) != 3:
                raise SignatureError("not an ASCII compact JWS of 3 parts", "jws")
            record = parse_record(b64url_decode(parts[1], "jws.payload"))
        except ProtocolError as exc:
            breaks.append(_Break(0, "bad_record", f"record #{position} in input: {exc}"))
            continue
        entry = _Entry(record, token, record_hash(token))
        seen = entries.get(record.seq)
        if seen is None:
            entries[record.seq] = entry
        elif seen.hash != entry.hash:
            breaks.append(_Break(record.seq, "fork", "two different records carry this seq"))
    return [entries[seq] for seq in sorted(entries)], breaks


def _check_gap(entry: _Entry, evictions: _Evictions, breaks: list[_Break]) -> None:
    assert isinstance(entry.record.body, Gap)
    for item in entry.record.body.ranges:
        if not item.first <= item.last < entry.record.seq:
            breaks.append(
                _Break(
                    entry.record.seq,
                    "bad_gap",
                    f"range {item.first}..{item.last} is not before the gap record",
                )
            )
            continue
        evictions.add(item.first, item.last, item.last_sha256)


def verify_chain(
    tokens: Iterable[str], keys: KeyResolver, *, anchor: Anchor | None = None
) -> ChainReport:
    """Check a set of one device's record JWS strings (any order; exact duplicates allowed).

    Without ``anchor`` the lowest seq must be 1 or its ``prev`` is taken on trust (a partial
    chain); with it, the records must continue from the anchor. Raises ``ChainError`` naming
    the lowest seq at fault and the reason; returns a ``ChainReport`` when everything holds.
    """
    entries, breaks = _decode(tokens)
    if not entries and not breaks:
        raise ChainError("no records", 0, "empty")
    evictions = _Evictions()
    device = entries[0].record.device if entries else ""
    for entry in entries:
        record = entry.record
        if record.device != device:
            breaks.append(_Break(record.seq, "device", f"{record.device!r} is not {device!r}"))
            continue
        if isinstance(record.body, Gap):
            # Taken even when its signature fails (reported below), so one forged record is
            # named as such rather than as the gaps it claims to explain.
            _check_gap(entry, evictions, breaks)
        try:
            kid = split(entry.token).kid
            verify(entry.token, keys(kid))
        except ProtocolError as exc:
            breaks.append(_Break(record.seq, "bad_signature", str(exc)))
            continue
        if kid != record.device:
            breaks.append(_Break(record.seq, "device", "kid is not the record's device"))
    _check_links(entries, evictions, anchor, breaks)
    if breaks:
        first = min(breaks, key=lambda b: b.seq)
        raise ChainError(first.message, first.seq, first.reason)
    return ChainReport(
        device=device,
        first_seq=entries[0].record.seq,
        last_seq=entries[-1].record.seq,
        records=len(entries),
        evicted=evictions.total(),
        last_hash=entries[-1].hash,
    )


def _check_links(
    entries: list[_Entry], evictions: _Evictions, anchor: Anchor | None, breaks: list[_Break]
) -> None:
    before: tuple[int, str] | None = (anchor.seq, anchor.hash) if anchor else None
    for entry in entries:
        seq, prev = entry.record.seq, entry.record.prev
        declared = evictions.last_hash.get(seq)
        if declared is not None and declared != entry.hash:
            breaks.append(_Break(seq, "bad_gap", "a gap record declares another hash for it"))
        if before is None:
            if seq != 1 and anchor is None:
                before = (seq, entry.hash)  # a partial chain: its first prev is taken on trust
                continue
            before = (0, "")
        last_seq, last_hash = before
        if seq <= last_seq:
            breaks.append(_Break(seq, "fork", f"seq {seq} is not after the anchor {last_seq}"))
        elif seq == last_seq + 1:
            if seq > 1 and prev != last_hash:
                breaks.append(_Break(seq, "bad_prev", "prev is not the hash of the record before"))
        else:
            missing = evictions.covers(last_seq + 1, seq - 1)
            if missing is not None:
                breaks.append(_Break(missing, "gap", "missing and not declared evicted"))
            elif prev != evictions.last_hash.get(seq - 1):
                breaks.append(
                    _Break(seq, "bad_prev", "prev is not the hash the gap record declares")
                )
        before = (seq, entry.hash)
