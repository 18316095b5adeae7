"""The outbox on a real SQLite file: seqs, chain, reopening, pending order, re-sends, acks."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.errors import OutboxError
from edge_agent.outbox import NewRecord, Outbox, OutboxLimits
from msp_protocol.chain import verify_chain
from msp_protocol.errors import RecordError
from msp_protocol.jws import Signer, verify_record
from msp_protocol.records import Record
from tests.protocol_data import VIN, body


class Clock:
    """A settable clock for the re-send timers (the outbox takes any callable)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_box(path: Path, signer: Signer, clock: Clock | None = None, **limits: float) -> Outbox:
    return Outbox.open(path, signer, VIN, OutboxLimits(**limits), clock or Clock())  # type: ignore[arg-type]


def records(box: Outbox) -> list[Record]:
    return [verify_record(r.jws, lambda kid: box._signer.public_key()) for r in box.records()]


def test_append_assigns_contiguous_seqs_and_chains(tmp_path: Path, signer: Signer) -> None:
    with open_box(tmp_path / "ob.db", signer) as box:
        first = box.append(body("session.start"), 1.79e9, "s-1")
        rest = box.append_many([NewRecord(body(k), 1.79e9 + i, "s-1") for i, k in
                                enumerate(["trip", "event", "dtc"])])  # fmt: skip
        assert [first.seq, *(r.seq for r in rest)] == [1, 2, 3, 4]
        stored = records(box)
        assert [r.kind for r in stored] == ["session.start", "trip", "event", "dtc"]
        assert stored[0].prev is None and stored[1].prev == first.hash
        assert stored[0].ts == "2026-09-21T14:13:20.000Z"
        assert {r.vin for r in stored} == {VIN}
        report = verify_chain([r.jws for r in box.records()], lambda kid: signer.public_key())
        assert (report.first_seq, report.last_seq) == (1, 4)


def test_reopening_continues_the_chain(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    with open_box(path, ed_signer) as box:
        box.append(body("trip"), 1.79e9)
    with open_box(path, ed_signer) as box:
        second = box.append(body("event"), 1.79e9 + 1)
        assert second.seq == 2
        verify_chain([r.jws for r in box.records()], lambda kid: ed_signer.public_key())


def test_the_outbox_uses_wal_and_full_sync(tmp_path: Path, ed_signer: Signer) -> None:
    with open_box(tmp_path / "ob.db", ed_signer) as box:
        assert box._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert box._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_a_bad_body_in_a_batch_stores_nothing(tmp_path: Path, ed_signer: Signer) -> None:
    with open_box(tmp_path / "ob.db", ed_signer) as box:
        box.append(body("trip"), 1.79e9)
        bad = NewRecord(body("trip"), 1.79e9, session="spaces are not allowed")
        with pytest.raises(RecordError, match="session"):
            box.append_many([NewRecord(body("event"), 1.79e9), bad])
        assert [r.seq for r in box.records()] == [1]
        assert box.append(body("event"), 1.79e9).seq == 2


def test_another_device_or_key_is_refused(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    open_box(path, ed_signer).close()
    with pytest.raises(OutboxError, match="another key"):
        open_box(path, Signer(Ed25519PrivateKey.generate(), ed_signer.kid))
    with pytest.raises(OutboxError, match="another key"):
        open_box(path, Signer(ed_signer._key, "gw-0002"))


def test_pending_in_seq_order_and_resent_after_timeout(tmp_path: Path, ed_signer: Signer) -> None:
    clock = Clock()
    with open_box(tmp_path / "ob.db", ed_signer, clock, resend_after_s=30.0) as box:
        box.append_many([NewRecord(body("event"), 1.79e9 + i) for i in range(5)])
        assert [r.seq for r in box.pending(3)] == [1, 2, 3]
        assert [r.seq for r in box.pending(3)] == [4, 5]  # 1-3 are in flight
        assert box.pending(3) == []
        clock.now += 29.0
        assert box.pending(10) == []
        clock.now += 1.0
        assert [r.seq for r in box.pending(10)] == [1, 2, 3, 4, 5]
        assert box.stats().in_flight == 5


def test_cumulative_ack(tmp_path: Path, ed_signer: Signer) -> None:
    clock = Clock()
    with open_box(tmp_path / "ob.db", ed_signer, clock) as box:
        stored = box.append_many([NewRecord(body("trip"), 1.79e9 + i) for i in range(6)])
        box.pending(10)
        assert box.ack(4) == 4
        assert box.ack(4) == 0 and box.ack(2) == 0  # repeated and older acks
        assert [r.seq for r in box.records()] == [5, 6]
        stats = box.stats()
        assert (stats.rows, stats.acked_seq, stats.first_seq, stats.last_seq) == (2, 4, 5, 6)
        assert stats.bytes == sum(len(r.jws) for r in stored[4:])
        assert stats.in_flight == 2
        anchor = box.anchor()
        assert anchor is not None and (anchor.seq, anchor.hash) == (4, stored[3].hash)
        with pytest.raises(OutboxError, match="beyond the last seq written"):
            box.ack(7)
        assert box.ack(6) == 2 and box.stats().rows == 0
        assert box.append(body("trip"), 1.79e9).seq == 7  # seqs never repeat after acks


def test_health_body_reports_queue_and_resets_after_reporting(
    tmp_path: Path, ed_signer: Signer
) -> None:
    with open_box(tmp_path / "ob.db", ed_signer, max_rows=10) as box:
        for i in range(12):
            box.append(body("event"), 1.79e9 + i)
        health = box.health_body(uptime_s=60.0, frames_per_s=500.0, errors={"can.bus_off": 1})
        stats = box.stats()
        assert health.evicted == stats.evicted_total > 0
        assert (health.queue_depth, health.queue_bytes) == (stats.rows, stats.bytes)
        box.append(health, 1.79e9 + 20)  # itself full: this append evicts some more
        since = box.stats().evicted_total - stats.evicted_total
        assert since > 0 and box.health_body(61.0, 500.0).evicted == since
        box.append(box.health_body(61.0, 500.0), 1.79e9 + 21)
        again = box.stats().evicted_total - stats.evicted_total - since
        assert box.health_body(62.0, 500.0).evicted == again


def test_a_file_that_is_not_an_outbox_is_refused(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE state (id INTEGER PRIMARY KEY, x TEXT)")
    with pytest.raises(OutboxError, match="cannot set up outbox"):
        open_box(path, ed_signer)


def test_appender_and_uplink_threads_keep_the_outbox_consistent(
    tmp_path: Path, ed_signer: Signer
) -> None:
    box = open_box(tmp_path / "ob.db", ed_signer, resend_after_s=0.0)
    done = threading.Event()
    sent: list[int] = []

    def uplink() -> None:  # what the MQTT uplink does: send due records, apply acks
        while not done.is_set() or box.stats().rows:
            due = box.pending(7)
            sent.extend(r.seq for r in due)
            if due:
                box.ack(due[-1].seq)

    thread = threading.Thread(target=uplink)
    thread.start()
    appended = []
    for i in range(60):
        appended += box.append_many([NewRecord(body("event"), 1.79e9 + i)] * (1 + i % 4))
    done.set()
    thread.join()
    stats = box.stats()
    assert (stats.rows, stats.bytes, stats.acked_seq) == (0, 0, appended[-1].seq)
    assert sorted(set(sent)) == [r.seq for r in appended]
    assert box._conn.execute("SELECT count(*) FROM records").fetchone() == (0,)
    box.close()
