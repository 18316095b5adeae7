"""Re-verify a device's stored chain from its JWS alone, quarantined records included.

``msp_protocol.chain.verify_chain`` checks the accepted records (signatures, contiguous seqs,
prev hashes, gap markers). A quarantined record (``cloud_sync.quarantine``) has no body that
parses, so it cannot go through it; it is checked here instead — its signature with the
device's key, its stored hash, and its ``prev`` against the record before it — and the
accepted records between quarantined ones are verified as segments anchored on the
quarantined record before them. A record whose JWS was erased with its person's data
(``Store.erase_person``) keeps its seq and hash: the records after it are verified anchored
on that hash; its own signature can no longer be checked (it is counted as ``erased``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from msp_protocol.bodies import Gap
from msp_protocol.chain import Anchor, verify_chain
from msp_protocol.errors import ChainError
from msp_protocol.jws import PublicKey, record_hash, split, verify
from msp_protocol.records import Record, parse_record

from .quarantine import chain_place
from .store import Quarantined


@dataclass(frozen=True, slots=True)
class AuditReport:
    """A device's stored chain that verified: its seq range and what it holds."""

    device: str
    first_seq: int
    last_seq: int
    records: int
    evicted: int
    quarantined: int
    erased: int = 0


def audit_chain(
    device: str, tokens: Sequence[str], quarantined: Sequence[Quarantined], key: PublicKey,
    erased: Sequence[tuple[int, str]] = (),
) -> AuditReport:
    """Verify ``device``'s accepted records (``tokens``), quarantined records and erased
    records (``(seq, hash)``) together as one chain; raises ``ProtocolError`` (``ChainError``
    naming the seq) at the first break."""
    accepted = sorted(((_parse(t), t) for t in tokens), key=lambda rt: rt[0].seq)
    hashes = {rec.seq: record_hash(tok) for rec, tok in accepted}
    declared = {r.last: r.last_sha256 for rec, _ in accepted if isinstance(rec.body, Gap)
                for r in rec.body.ranges}  # fmt: skip
    held = sorted(quarantined, key=lambda q: q.seq)
    hashes.update(dict(erased))  # erased: their stored hash stands for them
    for q in held:
        _check_quarantined(device, q, key)
        hashes[q.seq] = q.hash
    for q in held:
        place = chain_place(split(q.jws).payload, q.reason, "")
        assert place is not None  # checked above
        before = hashes.get(q.seq - 1, declared.get(q.seq - 1))
        if q.seq > 1 and place.prev != before:
            raise ChainError("prev is not the hash of the record before", q.seq, "bad_prev")

    def keys(_kid: str) -> PublicKey:
        return key

    records = evicted = 0
    bounds = sorted([q.seq for q in held] + [seq for seq, _h in erased])
    start: Anchor | None = None
    for index in range(len(bounds) + 1):
        low = bounds[index - 1] if index else 0
        high = bounds[index] if index < len(bounds) else None
        segment = [t for r, t in accepted if r.seq > low and (high is None or r.seq < high)]
        if segment:
            report = verify_chain(segment, keys, anchor=start)
            records += report.records
            evicted += report.evicted
        if high is not None:
            start = Anchor(high, hashes[high])
    seqs = [r.seq for r, _ in accepted] + bounds
    return AuditReport(device, min(seqs), max(seqs), records, evicted, len(held), len(erased))


def _parse(token: str) -> Record:
    try:
        return parse_record(split(token).payload)
    except (ValueError, RecursionError) as exc:  # ProtocolError is a ValueError too
        raise ChainError(f"a stored record does not parse: {exc}", 0, "bad_record") from None


def _check_quarantined(device: str, q: Quarantined, key: PublicKey) -> None:
    try:
        jws = verify(q.jws, key)
    except (ValueError, RecursionError) as exc:
        raise ChainError(f"quarantined record: {exc}", q.seq, "bad_signature") from None
    if jws.kid != device or record_hash(q.jws) != q.hash:
        raise ChainError("quarantined record: kid or stored hash differs", q.seq, "device")
    place = chain_place(jws.payload, q.reason, "")
    if place is None or place.seq != q.seq or place.device != device:
        raise ChainError("quarantined record: its seq is not where it is kept", q.seq, "fork")
