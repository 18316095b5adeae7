"""The ingest pipeline against a real SQLite store: acceptance, order, and every rejection."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.ingest import Ack, Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store.sqlite import SqliteStore
from msp_protocol import bodies
from msp_protocol.chain import verify_chain
from msp_protocol.jws import Signer, load_public_key, record_hash
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway, event, session_end, trip


def enrolled(store: SqliteStore, ca: DeviceCa, device: str = "gw-1", **kw: object) -> Gateway:
    gw = Gateway(device, kw.pop("vin", "JT1234567"), **kw)  # type: ignore[arg-type]
    store.enroll(gw.device_row(ca))
    return gw


def send(ingestor: Ingestor, gw: Gateway, *tokens: str, topic: str | None = None) -> list[Ack]:
    return ingestor.process([(topic or rec_topic(gw.device), t.encode()) for t in tokens])


def test_chain_in_order_is_stored_acked_and_verifies(ingestor: Ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    tokens = [gw.sign(trip(), "trip"), gw.sign(event(), "event"), gw.sign(trip(3.0), "trip")]
    assert send(ingestor, gw, *tokens) == [Ack("gw-1", 3)]
    assert store.counts()["records"] == 3
    assert store.counts()["trips"] == 2 and store.counts()["events"] == 1
    stored = [store.record_hash("gw-1", s) for s in (1, 2, 3)]
    assert stored == [record_hash(t) for t in tokens]
    key = load_public_key(store.device("gw-1").public_key_pem.encode())  # type: ignore[union-attr]
    assert verify_chain(tokens, lambda _kid: key).last_seq == 3
    assert store.rejections() == {}


def test_a_batch_message_commits_every_record_with_one_cumulative_ack(ingestor, store,
                                                                      device_ca):
    gw = enrolled(store, device_ca)
    tokens = [gw.sign(trip(float(i)), "trip") for i in range(1, 6)] + [gw.sign(event(), "event")]
    batch = "\n".join(tokens).encode()
    assert ingestor.process([(rec_topic(gw.device), batch)]) == [Ack("gw-1", 6)]
    assert [store.record_hash("gw-1", s) for s in range(1, 7)] == [record_hash(t) for t in tokens]
    assert store.counts()["trips"] == 5 and store.counts()["events"] == 1
    assert store.rejections() == {}
    # re-sent (no ack arrived): every record a duplicate, the same ack again
    assert ingestor.process([(rec_topic(gw.device), batch)]) == [Ack("gw-1", 6)]
    assert store.rejections() == {"duplicate": 6}


def test_a_forged_record_inside_a_batch_is_refused_alone(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    t1, t2, t3 = (gw.sign(trip(), "trip") for _ in range(3))
    forger = Gateway("gw-1", gw.vin, seq=1, prev=record_hash(t1))  # right id and place, wrong key
    forged = forger.sign(trip(500.0), "trip")
    batch = b"\n".join(t.encode() for t in (t1, forged, t2, b"".decode(), t3))
    assert ingestor.process([(rec_topic(gw.device), batch)]) == [Ack("gw-1", 3)]
    assert [store.record_hash("gw-1", s) for s in (1, 2, 3)] == [record_hash(t) for t in
                                                                  (t1, t2, t3)]  # fmt: skip
    assert store.rejections() == {"bad_signature": 1, "malformed": 1}  # the empty line too


def test_a_batch_over_the_payload_bound_is_refused_whole(store, card_issuer, device_ca):
    gw = enrolled(store, device_ca)
    tokens = [gw.sign(trip(), "trip") for _ in range(4)]
    small = Ingestor(store, card_issuer.anchors(), max_payload=3 * len(tokens[0]))
    assert small.process([(rec_topic(gw.device), "\n".join(tokens).encode())]) == []
    assert store.rejections() == {"oversized": 1} and store.counts()["records"] == 0
    assert small.process([(rec_topic(gw.device), "\n".join(tokens[:2]).encode())]) == [
        Ack("gw-1", 2)]


def test_duplicate_is_acked_and_stored_once(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    token = gw.sign(trip(), "trip")
    send(ingestor, gw, token)
    assert send(ingestor, gw, token) == [Ack("gw-1", 1)]
    assert store.counts()["trips"] == 1
    assert store.rejections() == {"duplicate": 1}


def test_out_of_order_waits_for_its_predecessor(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    t1, t2, t3 = (gw.sign(trip(), "trip") for _ in range(3))
    assert send(ingestor, gw, t3, t2) == []  # nothing contiguous yet: no ack
    assert store.counts()["records"] == 0
    assert send(ingestor, gw, t1) == [Ack("gw-1", 3)]
    assert store.chain_head("gw-1").seq == 3


def test_waiting_room_is_bounded(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    tokens = [gw.sign(trip(), "trip") for _ in range(11)]
    send(ingestor, gw, *tokens[1:])  # 10 ahead of seq 1, room for 8
    assert store.rejections() == {"out_of_order_overflow": 2}
    assert send(ingestor, gw, tokens[0]) == [Ack("gw-1", 9)]
    assert send(ingestor, gw, *tokens[9:]) == [Ack("gw-1", 11)]


def test_gap_record_lets_the_chain_skip_evicted_seqs(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    t1 = gw.sign(trip(), "trip")
    evicted = [gw.sign(trip(), "trip") for _ in range(2)]  # seqs 2, 3: never sent
    t4 = gw.sign(trip(), "trip")
    gap = bodies.Gap("size_bound", (bodies.EvictedRange(2, 3, record_hash(evicted[-1]),
                                                        {"trip": 2}),))  # fmt: skip
    t5 = gw.sign(gap, "gap")
    assert send(ingestor, gw, t1, t4) == [Ack("gw-1", 1)]
    assert send(ingestor, gw, t5) == [Ack("gw-1", 5)]
    assert store.counts()["evictions"] == 1 and store.counts()["records"] == 3


@pytest.mark.parametrize("card_change", ["none", "hash_only"])
def test_session_binds_person_and_attributes_trips(ingestor, store, device_ca, card_issuer,
                                                   card_change):  # fmt: skip
    card = card_issuer.card()
    gw1 = enrolled(store, device_ca, "gw-1", vin="JTCAR00001")
    gw2 = enrolled(store, device_ca, "gw-2", vin="JTTRUCK0002")
    send(ingestor, gw1, gw1.sign(card.session_start(gw1, "s-1"), "session.start", "s-1"),
         gw1.sign(trip(20.0, 4.0), "trip", "s-1"), gw1.sign(session_end(), "session.end", "s-1"))
    start2 = card.session_start(gw2, "s-2", send_cert=card_change == "none")
    send(ingestor, gw2, gw2.sign(start2, "session.start", "s-2"),
         gw2.sign(trip(30.0, 0.0), "trip", "s-2"))  # fmt: skip
    [person] = store.persons()
    assert [(s.id, s.vin, s.person_id) for s in store.sessions()] == [
        ("s-1", "JTCAR00001", person.id), ("s-2", "JTTRUCK0002", person.id)]  # fmt: skip
    assert store.sessions()[0].end_reason == "ignition_off"
    assert [(t.vin, t.distance_km) for t in store.trips(person.id)] == [
        ("JTCAR00001", 20.0), ("JTTRUCK0002", 30.0)]  # fmt: skip
    assert {v.vin: v.persons for v in store.vehicles()} == {"JTCAR00001": 1, "JTTRUCK0002": 1}
    assert store.rejections() == {}


def _bad_card(case: str, issuer: CardIssuer, gw: Gateway, other: CardIssuer):
    if case == "card_untrusted":
        return other.card().session_start(gw, "s-1")
    if case == "card_expired":
        return issuer.card(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).session_start(gw, "s-1")
    if case == "card_certificate_unknown":
        return issuer.card().session_start(gw, "s-1", send_cert=False)
    if case == "statement_mismatch":
        return issuer.card().session_start(gw, "s-1", vin="JTOTHER99")
    good = issuer.card().session_start(gw, "s-1")
    forged = issuer.card().session_start(gw, "s-1")  # another card's signature
    return bodies.SessionStart(good.statement, forged.card_signature, good.card_certificate,
                               good.card_certificate_sha256)  # fmt: skip


@pytest.mark.parametrize("case", ["card_untrusted", "card_expired", "card_certificate_unknown",
                                  "statement_mismatch", "card_signature"])  # fmt: skip
def test_bad_card_binds_nobody_but_keeps_the_chain(ingestor, store, device_ca, card_issuer,
                                                   tmp_path, case):  # fmt: skip
    gw = enrolled(store, device_ca)
    body = _bad_card(case, card_issuer, gw, CardIssuer(tmp_path / "rogue"))
    acks = send(ingestor, gw, gw.sign(body, "session.start", "s-1"), gw.sign(trip(), "trip", "s-1"))
    assert acks == [Ack("gw-1", 2)]
    assert store.rejections() == {case: 1}
    assert store.persons() == [] and store.sessions() == []
    assert store.counts()["trips"] == 1  # kept, attributed to nobody


def test_rejections_store_nothing_and_are_counted(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    good = gw.sign(trip(), "trip")
    forger = Gateway("gw-1", gw.vin)  # right id, wrong key
    stranger = Gateway("gw-9", "JT9999999")
    revoked = enrolled(store, device_ca, "gw-r", vin="JTREV0001")
    store.revoke("gw-r", "2026-11-26T00:00:00Z")
    reuse = Gateway("gw-1", gw.vin, key=gw.key).sign(trip(99.0), "trip")  # seq 1, other content
    payload = good.split(".")[1]
    none_alg = "eyJhbGciOiJub25lIiwia2lkIjoiZ3ctMSJ9"  # {"alg":"none","kid":"gw-1"}
    cases = {
        "bad_signature": (rec_topic("gw-1"), forger.sign(trip(), "trip").encode()),
        "unknown_device": (rec_topic("gw-9"), stranger.sign(trip(), "trip").encode()),
        "revoked_device": (rec_topic("gw-r"), revoked.sign(trip(), "trip").encode()),
        "device_mismatch": (rec_topic("gw-r"), good.encode()),
        "oversized": (rec_topic("gw-1"), b"x" * (10 * 1024 * 1024)),
        "malformed": (rec_topic("gw-1"), bytes(b for b in range(256) if b != 10)),  # one line
        "alg_mismatch": (rec_topic("gw-1"), f"{none_alg}.{payload}.".encode()),
        "bad_topic": ("msp/v1/dev/gw-1/other", good.encode()),
    }  # fmt: skip
    for reason, message in cases.items():
        assert ingestor.process([message]) == [], reason
    send(ingestor, gw, good)
    send(ingestor, gw, reuse)
    expected = {reason: 1 for reason in cases} | {"seq_reused": 1}
    assert store.rejections() == expected
    assert store.counts()["records"] == 1 and store.record_hash("gw-1", 1) == record_hash(good)


def test_bad_prev_is_refused(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    send(ingestor, gw, gw.sign(trip(), "trip"))
    gw.prev = record_hash("not the previous record")
    assert send(ingestor, gw, gw.sign(trip(), "trip")) == [Ack("gw-1", 1)]
    assert store.rejections() == {"bad_prev": 1}


def test_es256_device_and_algorithm_confusion(ingestor, store, device_ca):
    gw = enrolled(store, device_ca, key=ec.generate_private_key(ec.SECP256R1()))
    send(ingestor, gw, gw.sign(trip(), "trip"))
    impostor = Gateway("gw-1", gw.vin, key=ed25519.Ed25519PrivateKey.generate(), seq=1,
                       prev=gw.prev)  # fmt: skip
    send(ingestor, gw, impostor.sign(trip(), "trip"))
    assert store.chain_head("gw-1").seq == 1
    assert store.rejections() == {"alg_mismatch": 1}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(payload=st.binary(max_size=600), device=st.sampled_from(["gw-1", "gw-x", "a/b"]))
def test_random_payloads_never_crash_or_store(ingestor, store, device_ca, payload, device):
    if store.device("gw-1") is None:
        enrolled(store, device_ca)
    before = sum(store.rejections().values())
    assert ingestor.process([(f"msp/v1/dev/{device}/rec", payload)]) == []
    assert store.counts()["records"] == 0
    # a bad topic refuses the message; otherwise each line is a record of a batch, refused alone
    lines = 1 if device == "a/b" else payload.count(b"\n") + 1
    assert sum(store.rejections().values()) == before + lines


def test_gap_overlapping_what_arrived_declares_only_the_rest(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    t1, t2, t3 = (gw.sign(trip(), "trip") for _ in range(3))  # 2 arrives, then is evicted
    t4 = gw.sign(trip(), "trip")
    gap = bodies.Gap("size_bound", (bodies.EvictedRange(2, 3, record_hash(t3), {"trip": 2}),))
    t5 = gw.sign(gap, "gap")
    assert send(ingestor, gw, t1, t2, t5, t4) == [Ack("gw-1", 5)]
    assert store.counts()["records"] == 4  # 1, 2, 4, 5; only 3 declared evicted
    assert store.rejections() == {}


def test_gap_naming_later_seqs_is_quarantined_and_declares_nothing(ingestor, store, device_ca):
    gw = enrolled(store, device_ca)
    send(ingestor, gw, gw.sign(trip(), "trip"))
    gap = bodies.Gap("size_bound", (bodies.EvictedRange(5, 9, record_hash("x"), {"trip": 5}),))
    assert send(ingestor, gw, gw.sign(gap, "gap")) == [Ack("gw-1", 2)]  # the chain goes on
    assert store.rejections() == {"bad_gap": 1} and store.counts()["records"] == 1
    assert [(q.seq, q.reason) for q in store.quarantined()] == [(2, "bad_gap")]
    assert store.chain_head("gw-1").seq == 2  # seqs 5..9 are not taken as evicted


def test_revoked_card_binds_nobody_and_a_forged_crl_is_ignored(store, device_ca, tmp_path):
    issuer = CardIssuer(tmp_path / "issuer")
    revoked, fine = issuer.card(), issuer.card()
    issuer.revoke(revoked)
    forger = CardIssuer(tmp_path / "forger")
    ingestor = Ingestor(store, issuer.anchors())
    gw = enrolled(store, device_ca)
    send(ingestor, gw, gw.sign(revoked.session_start(gw, "s-1"), "session.start", "s-1"))
    assert store.rejections() == {"card_revoked": 1} and store.persons() == []
    issuer.revoke(fine, key=forger.key)  # a CRL the issuer never signed
    send(Ingestor(store, issuer.anchors()), gw,
         gw.sign(fine.session_start(gw, "s-2"), "session.start", "s-2"))  # fmt: skip
    assert len(store.persons()) == 1 and store.rejections() == {"card_revoked": 1}


def test_two_workers_sharing_one_store_pass_the_chain_between_them(store, device_ca,
                                                                   card_issuer):  # fmt: skip
    gw = enrolled(store, device_ca)
    a, b = Ingestor(store, card_issuer.anchors()), Ingestor(store, card_issuer.anchors())
    t1, t2, t3, t4 = (gw.sign(trip(), "trip") for _ in range(4))
    send(a, gw, t1, t3)  # a shared subscription splits one device's records over workers
    assert send(b, gw, t2, t4) == [Ack("gw-1", 2)]
    assert a.process([]) == [Ack("gw-1", 3)]  # a's waiting seq 3 now follows b's seq 2
    assert b.process([]) == [Ack("gw-1", 4)]
    assert a.waiting == 0 and b.waiting == 0


def test_a_record_committed_by_another_worker_stops_waiting(store, device_ca, card_issuer):
    gw = enrolled(store, device_ca)
    a, b = Ingestor(store, card_issuer.anchors()), Ingestor(store, card_issuer.anchors())
    t1, t2, t3, t4 = (gw.sign(trip(), "trip") for _ in range(4))
    send(a, gw, t1, t3)
    assert a.waiting == 1
    assert send(b, gw, t2, t3, t4) == [Ack("gw-1", 4)]  # b got 3 again (a re-send)
    assert a.process([]) == [] and a.waiting == 0


_FUZZ_KEY = ed25519.Ed25519PrivateKey.generate()
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(body=_json, kind=st.sampled_from(["trip", "event", "session.start", "gap", "dtc"]),
       seq=st.integers(-1, 3))  # fmt: skip
def test_validly_signed_garbage_is_refused_not_fatal(ingestor, store, device_ca, body, kind, seq):
    """A device's own key signing nonsense (a compromised or buggy gateway) never crashes the
    registry and stores no record; with a place in the chain (seq 1 here) it is quarantined,
    once, and a different body for the same seq after that is a fork."""
    if store.device("gw-1") is None:  # one store for all examples of this test
        store.enroll(Gateway("gw-1", "JT1234567", key=_FUZZ_KEY).device_row(device_ca))
    payload = {"v": 1, "kind": kind, "device": "gw-1", "vin": "JT1234567", "seq": seq,
               "prev": None, "ts": "2026-11-26T10:00:00.000Z", "session": None, "body": body}
    token = Signer(_FUZZ_KEY, "gw-1").sign(json.dumps(payload).encode())
    before = store.rejections()
    acks = ingestor.process([(rec_topic("gw-1"), token.encode())])
    assert store.counts()["records"] == 0
    after = store.rejections()
    assert sum(after.values()) == sum(before.values()) + 1
    quarantined = store.quarantined()
    assert [q.seq for q in quarantined] == ([1] if quarantined else [])
    if seq == 1:
        assert acks == [Ack("gw-1", 1)]
        changed = {r for r in after if after[r] != before.get(r, 0)}
        first = quarantined[0].jws == token and changed == {"bad_record"}
        assert first or changed <= {"duplicate", "seq_reused"}
    else:
        assert acks == [] and after["bad_record"] == before.get("bad_record", 0) + 1
