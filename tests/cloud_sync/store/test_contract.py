"""The ``Store`` protocol, the same on every back end: devices, the chain and its idempotency,
quarantine, evictions, persons and sessions, the fleet copies committed with the records, the
``person_scores`` view, and secrets kept out of the database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.errors import EnrolmentError
from cloud_sync.ingest import Ack, Ingestor
from cloud_sync.mosquitto import password_hash
from cloud_sync.pki import DeviceCa
from cloud_sync.republish import Republisher, score_of
from cloud_sync.store import Batch, ChainHead, Fleet, Publication, Store, Withheld
from cloud_sync.store.open import open_store
from msp_protocol import bodies
from msp_protocol.chain import verify_chain
from msp_protocol.jws import load_public_key, record_hash
from msp_protocol.records import format_ts
from msp_protocol.topics import rec_topic
from tests.sync_kit import T0, CardIssuer, Gateway, event, session_end, trip


def enrolled(store: Store, ca: DeviceCa, device: str = "gw-1", vin: str = "JT1234567") -> Gateway:
    gw = Gateway(device, vin)
    store.enroll(gw.device_row(ca))
    return gw


def send(ingestor: Ingestor, gw: Gateway, *tokens: str) -> list[Ack]:
    return ingestor.process([(rec_topic(gw.device), t.encode()) for t in tokens])


def sql(store: Store, query: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query, on either back end (both keep a DB-API-like ``_conn``)."""
    return [tuple(r) for r in store._conn.execute(query).fetchall()]  # type: ignore[attr-defined]


def test_devices_enrol_once_and_revocation_is_seen_by_every_worker(
    store: Store, store_url: str, secrets: Path, device_ca: DeviceCa
) -> None:
    gw = enrolled(store, device_ca)
    row = store.device("gw-1")
    assert row is not None and row.vin == "JT1234567" and not row.revoked
    assert store.device("gw-1") == row and store.device("nope") is None
    with pytest.raises(EnrolmentError, match="already enrolled"):
        store.enroll(gw.device_row(device_ca))
    with pytest.raises(EnrolmentError, match="no such device"):
        store.revoke("nope", "2026-12-01T00:00:00Z")
    other = open_store(store_url, secrets_dir=secrets)  # another worker, or msp-registry revoke
    try:
        other.revoke("gw-1", "2026-12-01T00:00:00Z")
    finally:
        other.close()
    seen = store.device("gw-1")  # the key was cached; the revocation is not
    assert seen is not None and seen.revoked_at == "2026-12-01T00:00:00Z"
    assert seen.public_key_pem == row.public_key_pem
    assert [d.id for d in store.devices()] == ["gw-1"] and store.devices()[0].revoked


def test_chain_is_stored_idempotently_and_verifies(store: Store, device_ca: DeviceCa,
                                                    card_issuer: CardIssuer) -> None:  # fmt: skip
    ingestor = Ingestor(store, card_issuer.anchors())
    gw = enrolled(store, device_ca)
    tokens = [gw.sign(trip(), "trip"), gw.sign(event(), "event"), gw.sign(trip(3.0), "trip")]
    assert send(ingestor, gw, *tokens) == [Ack("gw-1", 3)]
    assert send(ingestor, gw, *tokens) == [Ack("gw-1", 3)]  # re-sent: stored once
    assert store.chain_head("gw-1") == ChainHead(3, record_hash(tokens[-1]))
    assert store.chain_head("gw-2") == ChainHead(0, None)
    assert [store.record_hash("gw-1", s) for s in (1, 2, 3)] == [record_hash(t) for t in tokens]
    assert store.record_hash("gw-1", 4) is None
    assert list(store.chain_records("gw-1")) == tokens
    device = store.device("gw-1")
    assert device is not None
    key = load_public_key(device.public_key_pem.encode())
    assert verify_chain(store.chain_records("gw-1"), lambda _kid: key).last_seq == 3
    counts = store.counts()
    assert (counts["records"], counts["trips"], counts["events"]) == (3, 2, 1)
    assert store.rejections() == {"duplicate": 3}


def test_evictions_and_quarantine_take_their_place_in_the_chain(
    store: Store, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    ingestor = Ingestor(store, card_issuer.anchors())
    gw = enrolled(store, device_ca)
    t1 = gw.sign(trip(), "trip")
    evicted = [gw.sign(trip(), "trip") for _ in range(2)]  # seqs 2, 3: never sent
    gap = bodies.Gap("size_bound", (bodies.EvictedRange(2, 3, record_hash(evicted[-1]),
                                                        {"trip": 2}),))  # fmt: skip
    t4 = gw.sign(gap, "gap")
    bad = gw.sign(bodies.Gap("size_bound", (bodies.EvictedRange(9, 9, "x" * 43, {}),)), "gap")
    t6 = gw.sign(trip(), "trip")
    assert send(ingestor, gw, t1, t4, bad, t6) == [Ack("gw-1", 6)]
    assert store.counts()["evictions"] == 1 and store.counts()["records"] == 3
    [kept] = store.quarantined("gw-1")
    assert (kept.seq, kept.reason, kept.hash) == (5, "bad_gap", record_hash(bad))
    assert kept.received_at is not None and store.quarantined() == [kept]
    assert store.record_hash("gw-1", 5) == record_hash(bad) and store.record_hash("gw-1", 2) is None
    assert store.chain_head("gw-1") == ChainHead(6, record_hash(t6))
    assert store.rejections()["bad_gap"] == 1


def _session_and_trips(store: Store, device_ca: DeviceCa, card_issuer: CardIssuer) -> str:
    gw = enrolled(store, device_ca)
    card = card_issuer.card()
    ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout)
    tokens = [gw.sign(card.session_start(gw, "s-1"), "session.start", "s-1"),
              gw.sign(trip(25.0, 2.0), "trip", "s-1"), gw.sign(event(), "event", "s-1"),
              gw.sign(trip(8.0), "trip")]  # fmt: skip
    assert send(ingestor, gw, *tokens) == [Ack("gw-1", 4)]
    [person] = store.persons()
    return person.id


def test_sessions_persons_trips_and_the_person_scores_view(
    store: Store, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    person = _session_and_trips(store, device_ca, card_issuer)
    [session] = store.sessions()
    assert (session.id, session.person_id, session.vin, session.ended_at) == (
        "s-1", person, "JT1234567", None)
    assert store.sessions(person) == [session] and store.sessions("nobody") == []
    assert store.session_person("s-1") == person and store.session_person("s-9") is None
    [consent] = store.session_consents("s-1")
    assert consent.recipient == "acme" and store.person_consents(person) == [consent]
    assert store.session_consents("s-9") == []
    [trip_row] = store.trips(person)  # the trip outside the session is nobody's
    assert (trip_row.distance_km, trip_row.vin) == (25.0, "JT1234567")
    [vehicle] = store.vehicles()
    assert (vehicle.vin, vehicle.fleet, vehicle.vehicle_class, vehicle.devices, vehicle.persons
            ) == ("JT1234567", "acme", "car", 1, 1)  # fmt: skip
    der = sql(store, "SELECT sha256 FROM card_certificates")
    assert store.card_certificate(der[0][0]) is not None and store.card_certificate("x") is None
    categories, consents = sql(store, "SELECT licence_categories, consents FROM sessions")[0]
    assert categories == '["普通"]' and '"acme"' in consents  # UTF-8 JSON text
    row = sql(store, "SELECT person_id, trips, km, score FROM person_scores")[0]
    expected = score_of(store, person, datetime.now(UTC))
    assert row[:3] == (person, 1, 25.0) and expected is not None
    assert row[3] == pytest.approx(expected, abs=1e-6)


def test_fleet_copies_are_committed_with_the_records_and_forgotten_once_sent(
    store: Store, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    _session_and_trips(store, device_ca, card_issuer)
    pending = store.fanout_pending(1000)
    topics = [p.topic for _, p in pending]
    assert any(t.startswith("msp/v1/fleet/acme/") for t in topics), topics
    assert all(isinstance(p.payload, bytes) and p.payload for _, p in pending)
    ids = [i for i, _ in pending]
    assert ids == sorted(ids) and store.fanout_pending(1) == pending[:1]
    store.fanout_done(ids[:-1])
    assert [i for i, _ in store.fanout_pending(1000)] == ids[-1:]
    store.fanout_done([])
    store.fanout_done(ids[-1:])
    assert store.fanout_pending(1000) == [] and store.counts()["fanout"] == 0


def test_the_registrys_own_publications_and_expired_retained_messages(store: Store) -> None:
    store.commit(Batch(publications=[Publication("msp/v1/fleet/a/keys/gw", b"\x00\xffk", True)]))
    [(_, pub)] = store.fanout_pending(10)
    assert pub == Publication("msp/v1/fleet/a/keys/gw", b"\x00\xffk", True)
    assert store.clear_expired("2030-01-01T00:00:00Z") == 0


def test_secrets_stay_out_of_the_database(store: Store, secrets: Path) -> None:
    key = store.pseudonym_secret()
    assert len(key) == 32 and (secrets / "pseudonym.key").exists()
    assert (secrets / "pseudonym.key").stat().st_mode & 0o077 == 0
    hashed = password_hash("hunter2", b"saltsaltsalt")
    store.add_fleet(Fleet("acme", "2026-12-01T00:00:00Z", hashed))
    store.add_fleet(Fleet("beta", "2026-12-01T00:00:00Z"))
    assert [(f.id, f.password_hash) for f in store.fleets()] == [("acme", hashed), ("beta", None)]
    assert sql(store, "SELECT * FROM fleets ORDER BY id") == [
        ("acme", "2026-12-01T00:00:00Z"), ("beta", "2026-12-01T00:00:00Z")]
    assert hashed in (secrets / "fleet-passwords").read_text()
    dumped = repr([sql(store, f"SELECT * FROM {t}") for t in store.counts()])
    assert key.hex() not in dumped and "saltsalt" not in dumped


def test_every_body_kind_withheld_counters_and_retained_expiry(
    store: Store, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    gw = enrolled(store, device_ca)
    ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout)
    consents = (bodies.Consent("acme", ("driving", "score"), "2026-12-01T00:00:00Z"),)
    start = card_issuer.card().session_start(gw, "s-1", consents=consents)
    dtc = bodies.Dtc((bodies.TroubleCode("P0301", "stored"), bodies.TroubleCode("P0420",
                                                                                "pending")),
                     True, 1234.0)  # fmt: skip
    crash = bodies.Emergency(format_ts(T0), "crash_flag", 31.0, 54.0, None)
    items = [(start, "session.start", "s-1"), (trip(30.0, 1.0), "trip", "s-1"),
             (dtc, "dtc", "s-1"), (crash, "emergency", "s-1"),
             (session_end(), "session.end", "s-1")]
    assert send(ingestor, gw, *(gw.sign(*item) for item in items)) == [Ack("gw-1", 5)]
    counts = store.counts()
    assert (counts["dtcs"], counts["emergencies"], counts["trips"]) == (2, 1, 1)
    [session] = store.sessions()
    assert (session.ended_at, session.end_reason) == (format_ts(T0 + 1000), "ignition_off")
    assert sql(store, "SELECT code, status, mil FROM dtcs ORDER BY code") == [
        ("P0301", "stored", 1), ("P0420", "pending", 1)]
    withheld = store.withheld()  # acme has no "maintenance" consent: the DTC record is withheld
    assert withheld.get(Withheld("acme", "dtc", "not_consented")) == 1, withheld
    pending = store.fanout_pending(100)
    assert any("/score/" in p.topic and p.retain for _, p in pending)
    store.fanout_done([i for i, _ in pending])
    assert store.clear_expired("2026-11-30T23:59:59.999Z") == 0
    assert store.clear_expired("2026-12-01T00:00:00.000Z") == 1
    [(_, cleared)] = store.fanout_pending(10)
    assert cleared.retain and cleared.payload == b"" and "/score/" in cleared.topic
    assert store.clear_expired("2027-01-01T00:00:00.000Z") == 0  # withdrawn once
