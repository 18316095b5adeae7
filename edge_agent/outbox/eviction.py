"""Which stored records the outbox gives up under its size bound, and the gap records naming them.

Priority (lowest goes first): ``health``, then ``stats``, then the oldest ``event``/``trip``.
``session.*``, ``emergency``, ``dtc`` and ``gap`` records are never evicted: a session's consent,
a crash and maintenance data are worth more than the bound, and a gap marker is the evidence
that tells the registry an eviction from tampering.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from msp_protocol.bodies import EvictedRange, Gap

#: Eviction priority by kind; kinds not listed are never evicted.
PRIORITY: Final[dict[str, int]] = {"health": 0, "stats": 1, "event": 2, "trip": 2}
#: Ranges per gap record (keeps a gap record well under the 64 KiB record limit).
RANGES_PER_GAP: Final = 256


@dataclass(frozen=True, slots=True)
class Victim:
    """A stored record chosen for eviction."""

    seq: int
    kind: str
    hash: str
    size: int


@dataclass(frozen=True, slots=True)
class Need:
    """How many rows and bytes must be freed (zero or negative: nothing to free)."""

    rows: int
    bytes: int

    def met_by(self, rows: int, size: int) -> bool:
        """Return whether freeing ``rows`` rows of ``size`` bytes in total is enough."""
        return rows >= self.rows and size >= self.bytes


def choose_victims(conn: sqlite3.Connection, need: Need) -> list[Victim] | None:
    """Return the fewest records, in priority order, whose removal meets ``need``.

    Returns ``[]`` when nothing needs freeing and ``None`` when even evicting everything that
    may be evicted would not be enough.
    """
    if need.met_by(0, 0):
        return []
    victims: list[Victim] = []
    size = 0
    cursor = conn.execute(
        "SELECT seq, kind, hash, size FROM records WHERE priority IS NOT NULL "
        "ORDER BY priority, seq"
    )
    for seq, kind, digest, length in cursor:
        if kind not in PRIORITY:  # a damaged priority column must never evict a gap record
            continue
        victims.append(Victim(seq, kind, digest, length))
        size += length
        if need.met_by(len(victims), size):
            cursor.close()
            return victims
    return None


def _runs(victims: list[Victim]) -> Iterator[list[Victim]]:
    run: list[Victim] = []
    for victim in sorted(victims, key=lambda v: v.seq):
        if run and victim.seq != run[-1].seq + 1:
            yield run
            run = []
        run.append(victim)
    if run:
        yield run


def gap_bodies(victims: list[Victim]) -> list[Gap]:
    """Return the gap bodies declaring ``victims`` evicted: one range per run of seqs."""
    ranges = [
        EvictedRange(
            first=run[0].seq,
            last=run[-1].seq,
            last_sha256=run[-1].hash,
            kinds=dict(sorted(Counter(v.kind for v in run).items())),
        )
        for run in _runs(victims)
    ]
    return [
        Gap(reason="size_bound", ranges=tuple(ranges[i : i + RANGES_PER_GAP]))
        for i in range(0, len(ranges), RANGES_PER_GAP)
    ]
