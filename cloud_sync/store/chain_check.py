"""The chain rules a store enforces inside its commit transaction, whatever the back end.

Many workers may commit records of one device (MQTT shared subscriptions): each plans its
batch against the chain heads it read, and another worker may have committed in between.
Inside the commit's transaction, holding the device's lock, a store reads what it keeps
around the batch's seqs (:class:`Stored`) and calls :func:`plan_device`, which returns what
is new and raises :class:`cloud_sync.errors.ChainConflict` when the batch no longer fits:

* a seq already stored (accepted or quarantined) with the same hash is a harmless duplicate,
  left out; with another hash it is a conflict (two workers never both accept a seq);
* an accepted record's ``prev`` must be the hash of seq-1 as stored, or as in the same batch,
  or the ``last_hash`` of an eviction ending at seq-1 (seq 1 has ``prev`` ``None``);
* a record inside an evicted range, or an eviction over stored records or overlapping
  another eviction, is a conflict (the gateway's declaration and the records crossed).

Quarantined records carry no ``prev`` (their body may be unreadable), so only their place is
checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ChainConflict
from .base import Accepted, Eviction, Quarantined


@dataclass(frozen=True, slots=True)
class Stored:
    """What a store keeps of one device between two seqs: hashes by seq (records and
    quarantine) and the evictions overlapping that span."""

    hashes: Mapping[int, str]
    evictions: Sequence[Eviction]


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """What of a batch is new for one device, in seq order."""

    accepted: Sequence[Accepted]
    quarantined: Sequence[Quarantined]
    evictions: Sequence[Eviction]


def span(accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
         evictions: Sequence[Eviction]) -> tuple[int, int]:  # fmt: skip
    """The seqs ``(lo, hi)`` a store must read for :func:`plan_device`: from the seq before the
    batch's first to its last (evictions counted whole)."""
    seqs = [a.record.seq for a in accepted] + [q.seq for q in quarantined]
    seqs += [e.first for e in evictions] + [e.last for e in evictions]
    return min(seqs) - 1, max(seqs)


def plan_device(device: str, accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
                evictions: Sequence[Eviction], stored: Stored) -> DevicePlan:  # fmt: skip
    """Check one device's part of a batch against what is stored (see the module docstring)
    and return what is new; raises ``ChainConflict`` naming the first seq that does not fit."""
    ends = {e.last: e.last_hash for e in stored.evictions}
    ranges = [(e.first, e.last) for e in stored.evictions]
    new_evictions: list[Eviction] = []
    for ev in sorted(evictions, key=lambda e: e.first):
        same = [e for e in stored.evictions if e.first == ev.first]
        if same and (same[0].last, same[0].last_hash) == (ev.last, ev.last_hash):
            continue  # declared before, by this worker or another
        if any(f <= ev.last and ev.first <= last for f, last in ranges):
            raise ChainConflict(device, ev.first, f"eviction {ev.first}..{ev.last} overlaps"
                                " one already declared")  # fmt: skip
        inside = [s for s in stored.hashes if ev.first <= s <= ev.last]
        if inside:
            raise ChainConflict(device, min(inside), f"stored, but the batch declares"
                                f" {ev.first}..{ev.last} evicted")  # fmt: skip
        new_evictions.append(ev)
        ranges.append((ev.first, ev.last))
        ends[ev.last] = ev.last_hash
    items: list[tuple[int, str, Accepted | Quarantined]] = [
        *((a.record.seq, a.hash, a) for a in accepted),
        *((q.seq, q.hash, q) for q in quarantined),
    ]
    items.sort(key=lambda item: item[0])
    batch: dict[int, str] = {}
    new_accepted: list[Accepted] = []
    new_quarantined: list[Quarantined] = []
    for seq, hash_, item in items:
        known = stored.hashes.get(seq, batch.get(seq))
        if known is not None:
            if known != hash_:
                raise ChainConflict(device, seq, "already stored with another hash")
            continue  # a re-sent record, or one another worker committed first
        if any(f <= seq <= last for f, last in ranges):
            raise ChainConflict(device, seq, "inside a range declared evicted")
        if isinstance(item, Accepted):
            prev = item.record.prev
            if seq == 1:
                if prev is not None:
                    raise ChainConflict(device, seq, "the first record has a prev")
            else:
                before = stored.hashes.get(seq - 1) or batch.get(seq - 1) or ends.get(seq - 1)
                if before is None:
                    raise ChainConflict(device, seq, f"seq {seq - 1} is not stored")
                if prev != before:
                    raise ChainConflict(device, seq, f"prev is not the hash of seq {seq - 1}")
            new_accepted.append(item)
        else:
            new_quarantined.append(item)
        batch[seq] = hash_
    return DevicePlan(new_accepted, new_quarantined, new_evictions)


def by_device(accepted: Sequence[Accepted], quarantined: Sequence[Quarantined],
              evictions: Sequence[Eviction]) -> dict[str, tuple[list[Accepted],
                                                              list[Quarantined],
                                                              list[Eviction]]]:  # fmt: skip
    """A batch's records and evictions grouped by device (sorted device ids: the order in
    which stores take the devices' locks, so two commits never deadlock)."""
    groups: dict[str, tuple[list[Accepted], list[Quarantined], list[Eviction]]] = {}
    for a in accepted:
        groups.setdefault(a.record.device, ([], [], []))[0].append(a)
    for q in quarantined:
        groups.setdefault(q.device, ([], [], []))[1].append(q)
    for e in evictions:
        groups.setdefault(e.device, ([], [], []))[2].append(e)
    return dict(sorted(groups.items()))
