"""Quarantine, the future-skew rule and the last guards, through the real ingest pipeline on a
real SQLite store: a signed, chained record whose body is refused is kept aside, takes its
place in the chain, is acked, audited and never republished; an unexpected exception in one
record's handling rejects that record only."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_sync import cli
from cloud_sync.ingest import Ack, Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.republish import Republisher
from cloud_sync.store import Accepted, Device, Fanned
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.worker import BrokerConfig, RegistryWorker
from msp_protocol import bodies
from msp_protocol.jws import record_hash
from msp_protocol.records import MAX_CLOCK_SKEW as MAX_FUTURE_SKEW
from msp_protocol.records import Record, format_ts
from msp_protocol.topics import rec_topic
from tests.cloud_sync.test_faults import _publish_raw
from tests.sync_deploy import wait_for
from tests.sync_kit import T0, CardIssuer, Gateway, trip

ARRIVAL = datetime.fromtimestamp(T0 + 3600, UTC)  # the records of sync_kit are from before


def enrolled(store: SqliteStore, ca: DeviceCa, device: str = "gw-1") -> Gateway:
    gw = Gateway(device, "JT1234567")
    store.enroll(gw.device_row(ca))
    return gw


def sign_raw(gw: Gateway, body: object, kind: str = "trip") -> str:
    """The gateway's next record with a body no schema allows (a buggy or newer gateway)."""
    value = {"v": 1, "kind": kind, "device": gw.device, "vin": gw.vin, "seq": gw.seq + 1,
             "prev": gw.prev, "ts": format_ts(T0 + gw.seq), "session": None, "body": body}
    token = gw.signer.sign(json.dumps(value).encode())
    gw.seq += 1
    gw.prev = record_hash(token)
    return token


def send(ingestor: Ingestor, gw: Gateway, *tokens: str) -> list[Ack]:
    return ingestor.process([(rec_topic(gw.device), t.encode()) for t in tokens])


@pytest.fixture
def fanned_ingestor(store: SqliteStore, card_issuer: CardIssuer) -> Ingestor:
    return Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout,
                    clock=lambda: ARRIVAL)  # fmt: skip


def test_refused_body_is_quarantined_and_the_chain_goes_on(fanned_ingestor, store, device_ca,
                                                           tmp_path, capsys):  # fmt: skip
    gw = enrolled(store, device_ca)
    t1 = gw.sign(trip(), "trip")
    bad = sign_raw(gw, {"distance_km": "far"})
    t3 = gw.sign(trip(), "trip")  # its prev is the quarantined record's hash
    assert send(fanned_ingestor, gw, t1, bad) == [Ack("gw-1", 2)]  # the ack covers it
    assert send(fanned_ingestor, gw, t3) == [Ack("gw-1", 3)]
    [kept] = store.quarantined()
    assert (kept.device, kept.seq, kept.reason, kept.jws) == ("gw-1", 2, "bad_record", bad)
    assert kept.hash == record_hash(bad) and kept.detail.startswith("body.")
    assert store.chain_records("gw-1") == [t1, t3] and store.counts()["trips"] == 2
    assert store.rejections() == {"bad_record": 1}
    # never republished: the fleet got copies of seqs 1 and 3 only
    pending = [json.loads(p.payload) for _, p in store.fanout_pending(100)
               if p.topic == "msp/v1/fleet/acme/trip"]  # fmt: skip
    assert [p["seq"] for p in pending] == [1, 3]
    # a re-send of the quarantined record is a duplicate, another body for its seq a fork
    assert send(fanned_ingestor, gw, bad) == [Ack("gw-1", 3)]
    fork = Gateway("gw-1", gw.vin, key=gw.key, seq=1, prev=record_hash(t1))
    send(fanned_ingestor, gw, fork.sign(trip(50.0), "trip"))
    assert store.rejections() == {"bad_record": 1, "duplicate": 1, "seq_reused": 1}
    # audit: the chain holds, and the quarantined record is listed
    db = ["--db", str(store.path), "--ca-dir", str(tmp_path / "ca")]
    assert cli.main(["audit", "--json", *db]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["records"], row["quarantined"], row["verdict"]) == (2, 1, "ok: seqs 1..3")
    assert [(q["seq"], q["reason"]) for q in row["quarantine"]] == [(2, "bad_record")]
    assert cli.main(["audit", *db]) == 0
    assert "quarantined (signed and chained" in capsys.readouterr().out


def test_audit_catches_a_tampered_quarantined_record(fanned_ingestor, store, device_ca, tmp_path,
                                                     capsys):  # fmt: skip
    gw = enrolled(store, device_ca)
    send(fanned_ingestor, gw, gw.sign(trip(), "trip"), sign_raw(gw, []),
         gw.sign(trip(), "trip"))  # fmt: skip
    forged = Gateway("gw-1", gw.vin, seq=1, prev=gw.prev).sign(trip(), "trip")  # another key
    store._conn.execute("UPDATE quarantine SET jws = ?", (forged,))  # tamper with the evidence
    assert cli.main(["audit", "--db", str(store.path), "--ca-dir", str(tmp_path / "ca")]) == 1
    assert "BROKEN: seq 2" in capsys.readouterr().out


def test_unreadable_envelope_cannot_take_a_place(fanned_ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    send(fanned_ingestor, gw, gw.sign(trip(), "trip"))
    for payload in (b"[1, 2]", b'{"seq": "two"}', b'{"device": "gw-1", "seq": 2, "prev": null}'):
        token = gw.signer.sign(payload)
        assert fanned_ingestor.process([(rec_topic("gw-1"), token.encode())]) == []
    assert store.quarantined() == [] and store.rejections() == {"bad_record": 3}
    assert store.chain_head("gw-1").seq == 1


@pytest.mark.parametrize("field", ["ts", "start", "end"])
def test_future_dated_trip_is_quarantined_beyond_the_skew(fanned_ingestor, store, device_ca,
                                                          field):  # fmt: skip
    gw = enrolled(store, device_ca)
    late = ARRIVAL + MAX_FUTURE_SKEW + timedelta(seconds=1)
    body = trip()
    if field == "end":
        body = bodies.Trip(**{**_fields(body), "end": format_ts(late.timestamp())})
    elif field == "start":  # a trip ends after it starts: both in the future
        body = bodies.Trip(**{**_fields(body), "start": format_ts(late.timestamp()),
                              "end": format_ts(late.timestamp() + 60)})  # fmt: skip
    rec = gw.record(body, "trip")
    if field == "ts":
        rec = Record(rec.kind, rec.device, rec.vin, rec.seq, rec.prev,
                     format_ts(late.timestamp()), None, body)  # fmt: skip
    token = gw.signer.sign_record(rec)
    gw.seq, gw.prev = 1, record_hash(token)
    assert send(fanned_ingestor, gw, token) == [Ack("gw-1", 1)]
    [kept] = store.quarantined()
    named = "ts" if field == "ts" else f"body.{field}"
    assert kept.reason == "future_ts" and kept.detail.startswith(named)
    assert store.counts()["trips"] == 0  # it weighs nothing in any score


def test_within_the_skew_and_old_records_are_accepted(store, device_ca, card_issuer):
    gw = enrolled(store, device_ca)
    now = datetime.now(UTC)
    ingestor = Ingestor(store, card_issuer.anchors(), clock=lambda: now)
    soon = now + MAX_FUTURE_SKEW - timedelta(seconds=1)
    ahead = bodies.Trip(**{**_fields(trip()), "end": format_ts(soon.timestamp())})
    old = bodies.Trip(**{**_fields(trip()), "start": "2026-01-01T00:00:00.000Z"})  # months ago
    assert send(ingestor, gw, gw.sign(ahead, "trip"), gw.sign(old, "trip")) == [Ack("gw-1", 2)]
    assert store.counts()["trips"] == 2 and store.quarantined() == []


def _fields(body: bodies.Trip) -> dict[str, object]:
    return {f: getattr(body, f) for f in bodies.Trip.__dataclass_fields__}


class _BuggyStore(SqliteStore):
    """The real store, with a bug planted in its device look-up for one device."""

    def device(self, device_id: str) -> Device | None:
        if device_id == "gw-bug":
            raise KeyError("a bug")
        return super().device(device_id)


def test_a_bug_in_one_message_rejects_only_that_message(tmp_path: Path, device_ca, card_issuer,
                                                        caplog):  # fmt: skip
    store = _BuggyStore(tmp_path / "registry.db")
    try:
        gw = enrolled(store, device_ca)
        ingestor = Ingestor(store, card_issuer.anchors())
        buggy = Gateway("gw-bug", "JTBUG0001").sign(trip(), "trip")
        messages = [(rec_topic("gw-bug"), buggy.encode()),
                    (rec_topic("gw-1"), gw.sign(trip(), "trip").encode())]  # fmt: skip
        assert ingestor.process(messages) == [Ack("gw-1", 1)]
        assert store.rejections() == {"internal_error": 1}
        assert "internal error handling a message of gw-bug" in caplog.text
        assert "KeyError: 'a bug'" in caplog.text  # with its traceback
    finally:
        store.close()


def test_a_bug_storing_one_record_quarantines_it_and_keeps_the_rest(store, device_ca,
                                                                    card_issuer):  # fmt: skip
    gw = enrolled(store, device_ca)
    tokens = [gw.sign(trip(float(km)), "trip") for km in (10, 13, 16)]
    republish = Republisher(store).fanout

    def fanout(accepted: list[Accepted]) -> Fanned:  # a republishing bug on one record
        if any(a.record.seq == 2 for a in accepted):
            raise ZeroDivisionError("a bug")
        return republish(accepted)

    ingestor = Ingestor(store, card_issuer.anchors(), fanout=fanout)
    assert send(ingestor, gw, *tokens) == [Ack("gw-1", 3)]
    [kept] = store.quarantined()
    assert (kept.seq, kept.reason, kept.jws) == (2, "internal_error", tokens[1])
    assert "ZeroDivisionError" in kept.detail
    assert store.chain_records("gw-1") == [tokens[0], tokens[2]]
    assert store.rejections() == {"internal_error": 1}
    assert store.chain_head("gw-1").seq == 3


class _BatchBuggyIngestor(Ingestor):
    """The real ingestor, with a bug planted outside its per-message guards."""

    def ingest(self, messages):  # type: ignore[no-untyped-def]
        if any(payload == b"boom" for _, payload in messages):
            raise RuntimeError("a bug in the batch loop")
        return super().ingest(messages)


def test_worker_survives_a_batch_that_raises(deployment, card_issuer) -> None:
    """Through real mosquitto: the batch is retried message by message, the bad message is
    counted and dropped, the good ones are committed and acked, and the worker serves on."""
    setup = deployment.enroll_gateway("gw-1", "JTCAR00001")
    store = SqliteStore(deployment.db)
    password = (deployment.brokerdir / "registry.secret").read_text().strip()
    worker = RegistryWorker(
        _BatchBuggyIngestor(store, card_issuer.anchors()),
        BrokerConfig(url=f"mqtt://127.0.0.1:{deployment.registry_port}", password=password),
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert worker.connected.wait(10)
        outbox = setup.open_outbox()
        setup.fill(outbox, 2)
        good = [r.jws.encode() for r in outbox.records()]
        outbox.close()
        assert _publish_raw(deployment, setup, [good[0], b"boom", good[1]]) == ["Success"] * 3
        wait_for(lambda: store.chain_head("gw-1").seq == 2, "both good records")
        wait_for(lambda: store.rejections().get("internal_error") == 1, "the count")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    # The dropped message was acknowledged to the broker: a registry that takes over the
    # session (same client id, persistent) is not handed it again, only what came after.
    config = BrokerConfig(url=f"mqtt://127.0.0.1:{deployment.registry_port}", password=password)
    successor = RegistryWorker(Ingestor(store, card_issuer.anchors()), config)
    stop = threading.Event()
    thread = threading.Thread(target=successor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert successor.connected.wait(10)
        outbox = setup.open_outbox()
        setup.fill(outbox, 1, start=2)
        [third] = [r.jws.encode() for r in outbox.records() if r.seq == 3]
        outbox.close()
        _publish_raw(deployment, setup, [third])
        wait_for(lambda: store.chain_head("gw-1").seq == 3, "the record after the restart")
        assert store.rejections() == {"internal_error": 1}  # b"boom" again would be malformed
    finally:
        stop.set()
        thread.join(10)
        store.close()


class _CardBugIngestor(Ingestor):
    """The real ingestor, with a bug planted in its card check."""

    def _card(self, state, rec):  # type: ignore[no-untyped-def]
        if isinstance(rec.body, bodies.SessionStart):
            raise IndexError("a bug")
        return super()._card(state, rec)


def test_a_bug_in_the_card_check_binds_nobody_but_keeps_the_chain(store, device_ca,
                                                                  card_issuer):  # fmt: skip
    gw = enrolled(store, device_ca)
    card = card_issuer.card()
    ingestor = _CardBugIngestor(store, card_issuer.anchors())
    tokens = [gw.sign(card.session_start(gw, "s-1"), "session.start", "s-1"),
              gw.sign(trip(), "trip", "s-1")]  # fmt: skip
    assert send(ingestor, gw, *tokens) == [Ack("gw-1", 2)]
    assert store.rejections() == {"internal_error": 1}
    assert store.persons() == [] and store.counts()["records"] == 2
