"""The database enforces the chain for many workers: a seq is accepted once, a record joins
the chain only on its predecessor, an eviction never covers stored records; a contradiction
is a ``ChainConflict`` and commits nothing, a re-sent record is no error. Two workers with
their own connections committing one device's records at once never break the chain."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cloud_sync.errors import ChainConflict
from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store import Accepted, Batch, ChainHead, Eviction, Quarantined, Store
from cloud_sync.store.open import open_store
from msp_protocol.chain import verify_chain
from msp_protocol.jws import load_public_key, record_hash, split
from msp_protocol.records import parse_record
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway, trip


def accepted(token: str) -> Accepted:
    return Accepted(parse_record(split(token).payload), token, record_hash(token))


def chain(store: Store, device_ca: DeviceCa, n: int) -> tuple[Gateway, list[str]]:
    gw = Gateway("gw-1", "JT1234567")
    store.enroll(gw.device_row(device_ca))
    return gw, [gw.sign(trip(float(i)), "trip") for i in range(1, n + 1)]


def test_a_resent_record_is_not_an_error_and_a_fork_is_a_conflict(store: Store,
                                                                   device_ca: DeviceCa) -> None:
    gw, tokens = chain(store, device_ca, 2)
    store.commit(Batch([accepted(tokens[0]), accepted(tokens[1])]))
    store.commit(Batch([accepted(tokens[1])], rejections={"x": 1}))  # the same again
    assert store.counts()["records"] == 2 and store.rejections() == {"x": 1}
    fork = Gateway("gw-1", "JT1234567", key=gw.key, seq=1, prev=record_hash(tokens[0]))
    other = fork.sign(trip(99.0), "trip")  # seq 2 again, another body: another worker's
    with pytest.raises(ChainConflict, match="seq 2: already stored with another hash") as info:
        store.commit(Batch([accepted(other)], rejections={"y": 1}))
    assert (info.value.device, info.value.seq) == ("gw-1", 2)
    assert store.rejections() == {"x": 1}  # nothing of the batch was committed
    assert store.record_hash("gw-1", 2) == record_hash(tokens[1])


def test_a_record_must_chain_on_what_is_stored_or_in_its_batch(store: Store,
                                                               device_ca: DeviceCa) -> None:
    _, tokens = chain(store, device_ca, 4)
    with pytest.raises(ChainConflict, match="seq 1 is not stored"):
        store.commit(Batch([accepted(tokens[1])]))
    store.commit(Batch([accepted(tokens[0])]))
    with pytest.raises(ChainConflict, match="seq 2 is not stored"):
        store.commit(Batch([accepted(tokens[2]), accepted(tokens[3])]))
    store.commit(Batch([accepted(t) for t in tokens[1:]]))  # 2..4 chained inside the batch
    assert store.chain_head("gw-1") == ChainHead(4, record_hash(tokens[3]))


def test_a_record_on_another_predecessor_is_a_conflict(store: Store, device_ca: DeviceCa) -> None:
    gw, tokens = chain(store, device_ca, 1)
    store.commit(Batch([accepted(tokens[0])]))
    stray = Gateway("gw-1", "JT1234567", key=gw.key, seq=1, prev="A" * 43).sign(trip(), "trip")
    with pytest.raises(ChainConflict, match="prev is not the hash of seq 1"):
        store.commit(Batch([accepted(stray)]))
    assert store.counts()["records"] == 1


def test_evictions_and_records_never_overlap(store: Store, device_ca: DeviceCa) -> None:
    _, tokens = chain(store, device_ca, 6)
    store.commit(Batch([accepted(t) for t in tokens[:3]]))
    late = Eviction("gw-1", 2, 5, record_hash(tokens[4]))  # seqs 2, 3 are stored meanwhile
    with pytest.raises(ChainConflict, match=r"seq 2: stored, but the batch declares 2\.\.5"):
        store.commit(Batch([accepted(tokens[5])], evictions=[late]))
    ev = Eviction("gw-1", 4, 5, record_hash(tokens[4]))
    store.commit(Batch([accepted(tokens[5])], evictions=[ev]))
    store.commit(Batch(evictions=[ev]))  # declared again: no error
    assert store.chain_head("gw-1") == ChainHead(6, record_hash(tokens[5]))
    with pytest.raises(ChainConflict, match="seq 4: inside a range declared evicted"):
        store.commit(Batch([accepted(tokens[3])]))
    with pytest.raises(ChainConflict, match="overlaps"):
        store.commit(Batch(evictions=[Eviction("gw-1", 5, 5, record_hash(tokens[4]))]))


def test_a_quarantined_seq_is_a_place_in_the_chain_like_a_record(store: Store,
                                                                 device_ca: DeviceCa) -> None:
    _, tokens = chain(store, device_ca, 2)
    kept = Quarantined("gw-1", 1, record_hash(tokens[0]), tokens[0], "bad_record", "test")
    store.commit(Batch(quarantined=[kept]))
    store.commit(Batch([accepted(tokens[1])]))  # chains on the quarantined seq 1
    with pytest.raises(ChainConflict, match="seq 1: already stored with another hash"):
        store.commit(Batch(quarantined=[Quarantined("gw-1", 1, "B" * 43, "x", "bad_record",
                                                    "test")]))  # fmt: skip
    assert store.chain_head("gw-1") == ChainHead(2, record_hash(tokens[1]))


@pytest.mark.parametrize("split", ["every_record_to_both", "round_robin"])
def test_two_workers_committing_one_device_at_once_never_break_its_chain(
    store: Store, store_url: str, secrets: Path, device_ca: DeviceCa, card_issuer: CardIssuer,
    split: str,
) -> None:
    """Each worker has its own connection and ingestor; either both get every record (the
    worst redelivery) or they take turns by message (a shared subscription), so each record
    waits for a predecessor the other worker commits. They commit as fast as they can,
    re-planning on a conflict, until the chain is whole."""
    gw, tokens = chain(store, device_ca, 60)
    chunks = [tokens[i:i + 3] for i in range(0, len(tokens), 3)]
    conflicts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(index: int) -> None:
        mine = open_store(store_url, secrets_dir=secrets)
        share = chunks if split == "every_record_to_both" else chunks[index::2]
        try:
            ingestor = Ingestor(mine, card_issuer.anchors(), max_waiting=100)
            start.wait()
            pending = [[(rec_topic("gw-1"), t.encode()) for t in c] for c in share]
            for batch in pending:
                try:
                    ingestor.process(batch)
                except ChainConflict:
                    conflicts.append(index)  # re-plan: keep the waiting room, re-read heads
            for _ in range(20_000):  # then drain what waits for the other worker's commits
                if mine.chain_head("gw-1").seq == 60:
                    break
                time.sleep(0.001)  # let the other worker commit
                try:
                    ingestor.process([])
                except ChainConflict:
                    conflicts.append(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert store.counts()["records"] == 60
    assert store.chain_head("gw-1") == ChainHead(60, record_hash(tokens[-1]))
    assert list(store.chain_records("gw-1")) == tokens
    device = store.device(gw.device)
    assert device is not None
    key = load_public_key(device.public_key_pem.encode())
    assert verify_chain(store.chain_records("gw-1"), lambda _kid: key).last_seq == 60


def test_two_workers_with_forked_chains_store_one_of_them_whole(
    store: Store, store_url: str, secrets: Path, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    """A cloned key: two workers commit two different chains of one device at once; the
    database lets exactly one record per seq in and every stored record chains on the one
    before, the loser's records being refused (``seq_reused``/``bad_prev``), not mixed in."""
    gw, fork_a = chain(store, device_ca, 30)
    clone = Gateway("gw-1", "JT1234567", key=gw.key)
    fork_b = [clone.sign(trip(100.0 + i), "trip") for i in range(30)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(tokens: list[str]) -> None:
        mine = open_store(store_url, secrets_dir=secrets)
        try:
            ingestor = Ingestor(mine, card_issuer.anchors(), max_waiting=100)
            start.wait()
            for i in range(0, len(tokens), 2):
                batch = [(rec_topic("gw-1"), t.encode()) for t in tokens[i:i + 2]]
                for _attempt in range(20):
                    try:
                        ingestor.process(batch)
                        break
                    except ChainConflict:
                        continue  # re-plan against what the other worker committed
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=worker, args=(f,)) for f in (fork_a, fork_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    stored = list(store.chain_records("gw-1"))
    assert stored in (fork_a, fork_b)  # one fork, whole: never a mix
    device = store.device(gw.device)
    assert device is not None
    key = load_public_key(device.public_key_pem.encode())
    assert verify_chain(stored, lambda _kid: key).last_seq == 30
    refused = store.rejections()
    assert refused.get("seq_reused", 0) + refused.get("bad_prev", 0) >= 1
