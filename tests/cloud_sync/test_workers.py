"""Many workers on one store: chain conflicts planned again, the waiting room kept across a
failed commit, acks read from the store, the early hook, and the verification pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloud_sync.errors import StoreError
from cloud_sync.ingest import Ack, Ingestor
from cloud_sync.store import Accepted, Batch, Fanout, Store
from cloud_sync.store.open import open_store
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.transport.base import Delivery
from cloud_sync.verify_pool import VerifyPool
from cloud_sync.worker import BrokerConfig, RegistryWorker
from msp_protocol import bodies
from msp_protocol.jws import record_hash
from msp_protocol.records import format_ts
from tests.cloud_sync.test_ingest import enrolled, send
from tests.sync_kit import T0, Gateway, trip


def race(store: Store, other: Callable[[], object]) -> None:
    """Make ``other`` (another worker's ingest, on its own connection) run first thing in the
    store's next commit, as if it had committed just before: the database must then refuse
    the planned batch (``ChainConflict``) or take it as it is."""
    commit = store.commit

    def first_the_other(batch: Batch, fanout: Fanout | None = None) -> None:
        del store.commit  # once
        other()
        commit(batch, fanout)

    store.commit = first_the_other  # type: ignore[method-assign]


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two connections to one fresh registry database of each back end: two workers."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    stores = [open_store(url, secrets_dir=tmp_path / "secrets") for _ in range(2)]
    yield stores[0], stores[1]
    for s in stores:
        s.close()


def test_a_fork_committed_first_by_another_worker_is_planned_again_as_seq_reused(
        two_stores, device_ca, card_issuer):  # fmt: skip
    sa, sb = two_stores
    gw = enrolled(sa, device_ca)
    clone = Gateway(gw.device, gw.vin, key=gw.key)
    a, b = Ingestor(sa, card_issuer.anchors()), Ingestor(sb, card_issuer.anchors())
    t1 = gw.sign(trip(), "trip")
    clone.seq, clone.prev = gw.seq, gw.prev
    ours, theirs = gw.sign(trip(1.0), "trip"), clone.sign(trip(2.0), "trip")
    assert send(a, gw, t1) == [Ack("gw-1", 1)]
    # a plans seq 2 against head 1; b commits the other seq 2 before a's commit
    race(sa, lambda: send(b, gw, theirs))
    assert send(a, gw, ours) == [Ack("gw-1", 2)]
    assert sa.record_hash("gw-1", 2) == record_hash(theirs)
    assert sa.rejections() == {"seq_reused": 1}
    assert a.waiting == 0


def test_a_predecessor_committed_by_another_worker_is_planned_again(two_stores, device_ca,
                                                                    card_issuer):  # fmt: skip
    """b commits seqs 2 and 3 while a plans 2 (a duplicate then) and 3..4 on top of it."""
    sa, sb = two_stores
    gw = enrolled(sa, device_ca)
    a, b = Ingestor(sa, card_issuer.anchors()), Ingestor(sb, card_issuer.anchors())
    t1, t2, t3, t4 = (gw.sign(trip(float(i)), "trip") for i in range(4))
    send(a, gw, t1)
    race(sa, lambda: send(b, gw, t2, t3))
    assert send(a, gw, t2, t3, t4) == [Ack("gw-1", 4)]  # the stored head: b's commit too
    assert sa.counts()["records"] == 4 and sa.rejections() == {}


class FailingStore(SqliteStore):
    """SQLite whose next ``fail`` commits raise ``StoreError`` (the database went away)."""

    fail = 0

    def commit(self, batch: Batch, fanout: Fanout | None = None) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("connection to the database lost")
        super().commit(batch, fanout)


def test_a_failed_commit_keeps_the_records_that_were_waiting(tmp_path, device_ca, card_issuer):
    store = FailingStore(tmp_path / "registry.db")
    try:
        gw = enrolled(store, device_ca)
        ingestor = Ingestor(store, card_issuer.anchors())
        t1, t2, t3 = (gw.sign(trip(float(i)), "trip") for i in range(3))
        assert send(ingestor, gw, t3, t2) == []
        assert ingestor.waiting == 2
        store.fail = 1
        with pytest.raises(StoreError):
            send(ingestor, gw, t1)
        assert ingestor.waiting == 2  # the plan was undone (seq 1 comes again with its batch)
        assert store.chain_head("gw-1").seq == 0
        # the worker retries the same batch: every record, including those that waited
        assert send(ingestor, gw, t1) == [Ack("gw-1", 3)]
        assert ingestor.waiting == 0 and store.counts()["records"] == 3
    finally:
        store.close()


def emergency(at: float = T0) -> bodies.Emergency:
    return bodies.Emergency(format_ts(at), "crash_flag", 31.0, 54.0, None)


def test_an_emergency_is_handed_over_as_soon_as_it_verifies(store, device_ca, card_issuer):
    early: list[Accepted] = []
    ingestor = Ingestor(store, card_issuer.anchors(), on_early=early.append)
    gw = enrolled(store, device_ca)
    t1, t2 = gw.sign(trip(), "trip"), gw.sign(trip(2.0), "trip")
    crash = gw.sign(emergency(), "emergency")
    assert send(ingestor, gw, crash) == []  # waits for seqs 1 and 2
    assert [(e.record.kind, e.record.seq, e.jws) for e in early] == [("emergency", 3, crash)]
    assert early[0].hash == record_hash(crash) and store.counts()["emergencies"] == 0
    send(ingestor, gw, crash)  # a re-send while it waits: not handed over twice
    assert len(early) == 1
    assert send(ingestor, gw, t1, t2) == [Ack("gw-1", 3)]
    assert store.counts()["emergencies"] == 1 and len(early) == 1  # trips are not early


def test_an_early_record_is_still_chain_checked(store, device_ca, card_issuer):
    early: list[Accepted] = []
    ingestor = Ingestor(store, card_issuer.anchors(), on_early=early.append)
    gw = enrolled(store, device_ca)
    t1 = gw.sign(trip(), "trip")
    gw.prev = "A" * 43  # a wrong predecessor hash
    crash = gw.sign(emergency(), "emergency")
    forger = Gateway(gw.device, gw.vin)
    forger.seq, forger.prev = 2, gw.prev
    forged = forger.sign(emergency(), "emergency")  # another key: never handed over
    send(ingestor, gw, crash, forged)
    assert [e.record.seq for e in early] == [2]
    assert send(ingestor, gw, t1) == [Ack("gw-1", 1)]
    assert store.rejections() == {"bad_signature": 1, "bad_prev": 1}
    assert store.counts()["emergencies"] == 0


def test_a_failing_early_hook_does_not_stop_ingest(store, device_ca, card_issuer):
    def hook(_acc: Accepted) -> None:
        raise RuntimeError("a bug in the consent service")

    ingestor = Ingestor(store, card_issuer.anchors(), on_early=hook)
    gw = enrolled(store, device_ca)
    assert send(ingestor, gw, gw.sign(emergency(), "emergency")) == [Ack("gw-1", 1)]
    assert store.counts()["emergencies"] == 1


def test_the_verification_pool_gives_the_same_verdicts_in_order(tmp_path, device_ca,
                                                                card_issuer):  # fmt: skip
    stores = [SqliteStore(tmp_path / f"{n}.db") for n in ("plain", "pool")]
    pool = VerifyPool(2)
    try:
        gws = [Gateway(f"gw-{i}", f"JT00000{i}") for i in range(3)]
        for s in stores:
            for g in gws:
                s.enroll(g.device_row(device_ca))
        forger = Gateway("gw-1", "JT000001")
        messages = []
        for n in range(12):
            g = gws[n % 3]
            messages.append((f"msp/v1/dev/{g.device}/rec", g.sign(trip(float(n)), "trip").encode()))
        forger.seq, forger.prev = 10, "A" * 43
        messages.insert(5, ("msp/v1/dev/gw-1/rec", forger.sign(trip(), "trip").encode()))
        messages[0], messages[3] = messages[3], messages[0]  # gw-0's seq 2 before its seq 1
        plain = Ingestor(stores[0], card_issuer.anchors()).process(messages)
        pooled = Ingestor(stores[1], card_issuer.anchors(), pool=pool).process(messages)
        assert plain == pooled == [Ack("gw-0", 4), Ack("gw-1", 4), Ack("gw-2", 4)]
        assert stores[0].rejections() == stores[1].rejections() == {"bad_signature": 1}
        assert [stores[1].record_hash("gw-0", s) for s in (1, 2)] == [
            stores[0].record_hash("gw-0", s) for s in (1, 2)]
    finally:
        pool.close()
        for s in stores:
            s.close()


def test_a_batch_is_cut_by_records_not_only_by_messages(ingestor) -> None:
    worker = RegistryWorker(ingestor, BrokerConfig(), batch_records=40)
    messages = [Delivery("t", b"\n".join([b"x"] * n)) for n in (32, 8, 1, 32, 32)]
    cut = worker._bounded(messages)
    assert [[d.payload.count(b"\n") + 1 for d in b] for b in cut] == [[32, 8], [1, 32], [32]]
    assert worker._bounded([]) == [[]]  # no message: one empty batch (the waiting room)
