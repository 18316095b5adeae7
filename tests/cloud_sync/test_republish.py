"""Republishing by tier and consent, with per-fleet pseudonyms; and a fleet operator receiving
its data through the broker's ACL."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import replace

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa, cert_pem, key_pem, write_private
from cloud_sync.recipients.signing import RegistrySigner, open_signed
from cloud_sync.republish import Republisher, fleet_pseudonym, score_of
from cloud_sync.store import Fanned, Publication, Withheld
from cloud_sync.store.sqlite import SqliteStore
from edge_agent.uplink import MqttUplink
from msp_protocol import bodies
from msp_protocol.jws import load_public_key
from msp_protocol.records import format_ts, parse_ts
from msp_protocol.topics import rec_topic
from tests.sync_deploy import Deployment, UplinkThread, wait_for
from tests.sync_kit import T0, CardIssuer, Gateway, event, trip


def consent(fleet: str, *categories: str, until: str = "2027-01-01T00:00:00Z") -> bodies.Consent:
    return bodies.Consent(fleet, categories, until)


def fan(ingestor, gw: Gateway, *items) -> Fanned:
    tokens = [gw.sign(body, kind, session) for body, kind, session in items]
    outcome = ingestor.ingest([(rec_topic(gw.device), t.encode()) for t in tokens])
    return Republisher(ingestor.store).fanout(outcome.accepted)


def publish(ingestor, gw: Gateway, *items) -> list[Publication]:
    return list(fan(ingestor, gw, *items).publications)


def test_session_data_goes_to_the_vehicles_fleet_under_its_pseudonym(ingestor, store, device_ca,
                                                                     card_issuer):  # fmt: skip
    card = card_issuer.card()
    car, truck = Gateway("gw-car", "JTCAR00001"), Gateway("gw-truck", "JTTRUCK001")
    for gw in (car, truck):
        store.enroll(gw.device_row(device_ca, fleet="rental"))
    # a consent to a third party carries no records there: only the vehicle's fleet gets them
    consents = (consent("insurer", "driving"), consent("rental", "driving"))
    start = card.session_start(car, "s-1", consents=consents)
    pubs = publish(ingestor, car, (start, "session.start", "s-1"), (trip(), "trip", "s-1"),
                   (event(), "event", "s-1"))  # fmt: skip
    assert [p.topic for p in pubs] == ["msp/v1/fleet/rental/session.start",
                                       "msp/v1/fleet/rental/trip", "msp/v1/fleet/rental/event"]
    payloads = [json.loads(p.payload) for p in pubs]
    [person] = store.persons()
    name = payloads[1]["person"]
    assert name.startswith("fp-") and {p["person"] for p in payloads} == {name}
    assert name != fleet_pseudonym(store.pseudonym_secret(), "insurer", person.id)
    assert payloads[1]["body"]["distance_km"] == 12.0 and payloads[1]["jws"].count(".") == 2
    # the session start shows the statement with rental's own consent only, no card data
    assert payloads[0]["jws"] is None
    assert set(payloads[0]["body"]) == {"statement"}
    assert payloads[0]["body"]["statement"]["consents"] == [
        {"recipient": "rental", "categories": ["driving"], "until": "2027-01-01T00:00:00Z"}]
    for p in pubs:
        assert person.id.encode() not in p.payload and person.key_sha256.encode() not in p.payload
    # the same person in another vehicle of the fleet: the same name
    pubs = publish(ingestor, truck,
                   (card.session_start(truck, "s-2", consents=consents), "session.start", "s-2"),
                   (trip(), "trip", "s-2"))  # fmt: skip
    assert json.loads(pubs[1].payload)["person"] == name


def test_consent_expiring_mid_session_stops_the_flow_at_its_expiry(ingestor, store, device_ca,
                                                                  card_issuer):  # fmt: skip
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    # records are stamped T0, T0+1, ...: the consent ends at T0+2.5, inside the session
    ends = (consent("acme", "driving", until=format_ts(T0 + 2.5)),)
    start = card_issuer.card().session_start(gw, "s-1", consents=ends)
    fanned = fan(ingestor, gw, (start, "session.start", "s-1"),
                 (replace(event(), start=format_ts(T0 + 2)), "event", "s-1"),  # ts T0+1: in time
                 (replace(event(), start=format_ts(T0 + 3)), "event", "s-1"),  # ts T0+2: data late
                 (event(), "event", "s-1"))  # ts T0+3: after the expiry
    assert [json.loads(p.payload)["seq"] for p in fanned.publications] == [1, 2]
    assert fanned.withheld == {Withheld("acme", "event", "expired"): 2,
                               Withheld("acme", "event", "location"): 1}  # fmt: skip
    # a trip that ends after the expiry is withheld even though its record is stamped before
    gw2 = Gateway("gw-2", "JTCAR00002")
    store.enroll(gw2.device_row(device_ca, fleet="acme"))
    start2 = card_issuer.card().session_start(gw2, "s-2", consents=ends)
    fanned = fan(ingestor, gw2, (start2, "session.start", "s-2"), (trip(), "trip", "s-2"))
    assert [p.topic for p in fanned.publications] == ["msp/v1/fleet/acme/session.start"]
    assert fanned.withheld == {Withheld("acme", "trip", "expired"): 1}


def test_unconsented_categories_are_withheld_and_counted(ingestor, store, device_ca,
                                                        card_issuer):  # fmt: skip
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    start = card_issuer.card().session_start(gw, "s-1", consents=(consent("acme", "maintenance"),))
    dtc = bodies.Dtc((bodies.TroubleCode("P0301", "stored"),), True, 1234.0)
    fanned = fan(ingestor, gw, (start, "session.start", "s-1"), (trip(), "trip", "s-1"),
                 (event(), "event", "s-1"), (dtc, "dtc", "s-1"))  # fmt: skip
    assert [p.topic for p in fanned.publications] == ["msp/v1/fleet/acme/dtc"]
    assert fanned.withheld == {Withheld("acme", k, "not_consented"): 1
                               for k in ("session.start", "trip", "event")}  # fmt: skip
    # the counters are committed with the records (the worker's fan-out path)
    ingestor.fanout = Republisher(store).fanout
    ingestor.process([(rec_topic(gw.device), gw.sign(trip(), "trip", "s-1").encode())])
    assert store.withheld() == {Withheld("acme", "trip", "not_consented"): 1}


def test_location_is_stripped_unless_consented(ingestor, store, device_ca, card_issuer):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    card = card_issuer.card()
    plain = card.session_start(gw, "s-1", consents=(consent("acme", "driving"),))
    [copy] = publish(ingestor, gw, (plain, "session.start", "s-1"), (event(), "event", "s-1"))[1:]
    value = json.loads(copy.payload)
    assert value["body"]["location"] is None and value["redacted"] == ["body.location"]
    assert value["jws"] is None  # the original holds the position
    assert b"35.68" not in copy.payload and b"139.76" not in copy.payload
    located = card.session_start(gw, "s-2", consents=(consent("acme", "driving", "location"),))
    [copy] = publish(ingestor, gw, (located, "session.start", "s-2"), (event(), "event", "s-2"))[1:]
    value = json.loads(copy.payload)
    assert value["body"]["location"] == {"lat": 35.68, "lon": 139.76} and "redacted" not in value
    assert value["jws"].count(".") == 2


def test_unverified_session_is_withheld(ingestor, store, device_ca, card_issuer):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    other = CardIssuer(card_issuer.directory.parent / "rogue")  # a card no anchor trusts
    start = other.card().session_start(gw, "s-1", consents=(consent("acme", "driving"),))
    fanned = fan(ingestor, gw, (start, "session.start", "s-1"), (trip(), "trip", "s-1"))
    assert fanned.publications == []
    assert fanned.withheld == {Withheld("acme", "session.start", "unverified_session"): 1,
                               Withheld("acme", "trip", "unverified_session"): 1}  # fmt: skip


def test_score_reaches_a_second_fleet_only_after_consent(ingestor, store, device_ca,
                                                        card_issuer):  # fmt: skip
    card = card_issuer.card()
    van, rental = Gateway("gw-van", "JTVAN00001"), Gateway("gw-rent", "JTRENT0001")
    store.enroll(van.device_row(device_ca, fleet="haul"))
    store.enroll(rental.device_row(device_ca, fleet="rental"))
    # haul sees none of the driving: only maintenance is consented to it
    haul_only = (consent("haul", "maintenance"),)
    fanned = fan(ingestor, van, (card.session_start(van, "s-1", consents=haul_only),
                                 "session.start", "s-1"),
                 *[(trip(30.0, 6.0, day), "trip", "s-1") for day in range(3)])  # fmt: skip
    assert fanned.publications == []
    assert fanned.withheld[Withheld("haul", "trip", "not_consented")] == 3
    [person] = store.persons()
    with_score = (consent("rental", "driving", "score"),)
    pubs = publish(ingestor, rental, (card.session_start(rental, "s-2", consents=with_score),
                                      "session.start", "s-2"), (trip(20.0, 0.0, 3), "trip", "s-2"))
    score = [p for p in pubs if "/score/" in p.topic]
    name = fleet_pseudonym(store.pseudonym_secret(), "rental", person.id)
    assert [(p.topic, p.retain) for p in score] == [(f"msp/v1/fleet/rental/score/{name}", True)]
    value = json.loads(score[0].payload)
    # signed by the registry: the JWS says exactly what the message says
    key = load_public_key(RegistrySigner(store).public_pem().encode())
    assert open_signed(value.pop("registry_jws").encode(), key) == value
    at = parse_ts(trip(20.0, 0.0, 3).end)
    # pooled over the van's trips in the other fleet too: 18 points over 110 km
    assert value == {"fleet": "rental", "person": name, "at": format_ts(at.timestamp()),
                     "score": round(score_of(store, person.id, at), 1),
                     "until": "2027-01-01T00:00:00Z"}  # fmt: skip
    assert score[0].expires == "2027-01-01T00:00:00.000Z"
    assert value["score"] < 100.0 and len(store.trips(person.id)) == 4
    # and now a trip in the other fleet's van, which haul does not even see, updates it
    pubs = publish(ingestor, van, (trip(30.0, 0.0, 4), "trip", "s-1"))
    assert [p.topic for p in pubs] == [f"msp/v1/fleet/rental/score/{name}"]


def test_a_retained_score_is_withdrawn_when_its_consent_ends(store, device_ca, card_issuer):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="rental"))
    ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout)
    consents = (consent("rental", "driving", "score", until="2026-12-01T00:00:00Z"),)
    start = card_issuer.card().session_start(gw, "s-1", consents=consents)
    ingestor.process([(rec_topic(gw.device), gw.sign(*item).encode())
                      for item in ((start, "session.start", "s-1"), (trip(), "trip", "s-1"))])
    [score] = [p for _, p in store.fanout_pending(10) if "/score/" in p.topic]
    store.fanout_done([i for i, _ in store.fanout_pending(10)])
    assert store.clear_expired("2026-11-30T23:59:59.999Z") == 0
    assert store.clear_expired("2026-12-01T00:00:00.000Z") == 1
    assert [p for _, p in store.fanout_pending(10)] == [Publication(score.topic, b"", True)]
    assert store.clear_expired("2027-01-01T00:00:00.000Z") == 0  # withdrawn once


def test_tiers_without_a_driver(ingestor, store, device_ca):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    crash = bodies.Emergency(format_ts(T0), "crash_flag", 31.0, 54.0, None)
    stats = bodies.Stats("2026-11-18T10:00:00Z", (bodies.CellStats(
        "872f5aadeffffff", 12.0, 900.0, 48.0, None, None),))  # fmt: skip
    health = bodies.Health(60.0, 3, 2048, 120.0, {}, 0, 0)
    pubs = publish(ingestor, gw, (event(), "event", None), (crash, "emergency", None),
                   (stats, "stats", None), (health, "health", None))  # fmt: skip
    # a stats record is one vehicle's contributions: only ever published added up, k-anonymous
    # and noised (cloud_sync.public, tests/cloud_sync/test_public.py), never as it came
    assert [p.topic for p in pubs] == ["msp/v1/fleet/acme/event", "msp/v1/fleet/acme/emergency"]
    vehicle_data = json.loads(pubs[0].payload)  # as is: location kept, no person
    assert vehicle_data["person"] is None and vehicle_data["body"]["location"]["lat"] == 35.68


def test_fleet_operator_receives_only_its_fleet(deployment: Deployment, card_issuer) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001", fleet="acme")
    deployment.enroll_gateway("gw-2", "JTCAR00002", fleet="other")
    assert deployment.broker is not None
    deployment.broker.stop()  # regenerate the ACL now that fleets exist, as an operator would
    deployment.configure()
    left = SqliteStore(deployment.db)  # a copy committed just before a registry crash
    left._conn.execute("INSERT INTO fanout (topic, payload) VALUES (?, ?)",
                       ("msp/v1/fleet/acme/dtc", b"{}"))  # fmt: skip
    left.close()
    deployment.broker.start()
    ca = DeviceCa.open(deployment.root / "ca", create=False)
    got: dict[str, list[str]] = {"acme": [], "other": []}
    ready = threading.Barrier(3)
    clients = []
    for fleet in got:
        issued = ca.issue_client(f"fleet.{fleet}")
        cert, key = deployment.root / f"{fleet}.pem", deployment.root / f"{fleet}.key"
        cert.write_bytes(cert_pem(issued.cert))
        write_private(key, key_pem(issued.key))
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet.{fleet}",
                             protocol=mqtt.MQTTv5)  # fmt: skip
        client.tls_set(ca_certs=str(deployment.brokerdir / "device-ca.pem"), certfile=str(cert),
                       keyfile=str(key), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        client.on_message = lambda _c, _u, m, f=fleet: got[f].append(m.topic)
        client.on_subscribe = lambda *_a: ready.wait(10)
        client.connect("127.0.0.1", deployment.device_port)
        client.subscribe("msp/v1/fleet/#", qos=1)  # asks for everything; the ACL filters
        client.loop_start()
        clients.append(client)
    ready.wait(10)
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 3)  # trips without a driver: the vehicle's own fleet receives them
    try:
        uplink = MqttUplink(deployment.uplink_config(gw), outbox)
        with UplinkThread(uplink):
            wait_for(lambda: len(got["acme"]) == 5, "acme's key, dtc and three trips")
            wait_for(lambda: deployment.stats()["counts"]["fanout"] == 0, "fan-out acked")
        assert uplink.stats().acked == 3
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
    # each fleet also gets its devices' keys (retained, queued at enrolment)
    assert sorted(got["acme"]) == ["msp/v1/fleet/acme/dtc", "msp/v1/fleet/acme/keys/gw-1"] \
        + ["msp/v1/fleet/acme/trip"] * 3
    assert got["other"] == ["msp/v1/fleet/other/keys/gw-2"]



def test_fanout_is_committed_with_the_records(store, device_ca, card_issuer):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).fanout)
    tokens = [gw.sign(trip(), "trip"), gw.sign(trip(), "trip")]
    ingestor.process([(rec_topic("gw-1"), t.encode()) for t in tokens])
    ingestor.process([(rec_topic("gw-1"), tokens[0].encode())])  # a duplicate fans out nothing
    pending = store.fanout_pending(10)
    assert [p.topic for _, p in pending] == ["msp/v1/fleet/acme/trip"] * 2
    assert [json.loads(p.payload)["seq"] for _, p in pending] == [1, 2]
    store.fanout_done([pending[0][0]])
    assert [i for i, _ in store.fanout_pending(10)] == [pending[1][0]]
