"""Republishing by tier and consent, with per-fleet pseudonyms; and a fleet operator receiving
its data through the broker's ACL."""

from __future__ import annotations

import json
import ssl
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa, cert_pem, key_pem, write_private
from cloud_sync.republish import Republisher
from cloud_sync.sqlite_store import SqliteStore
from cloud_sync.store import Publication
from edge_agent.uplink import MqttUplink
from msp_protocol import bodies
from msp_protocol.records import format_ts
from msp_protocol.topics import rec_topic
from tests.sync_deploy import Deployment, UplinkThread, wait_for
from tests.sync_kit import T0, Gateway, event, trip


def consent(fleet: str, *kinds: str, until: str = "2027-01-01T00:00:00Z") -> bodies.Consent:
    return bodies.Consent(fleet, kinds, until)


def publish(ingestor, gw: Gateway, *items) -> list[Publication]:
    tokens = [gw.sign(body, kind, session) for body, kind, session in items]
    outcome = ingestor.ingest([(rec_topic(gw.device), t.encode()) for t in tokens])
    return Republisher(ingestor.store).publications(outcome.accepted)


def test_consented_kinds_go_to_recipients_under_pseudonyms(ingestor, store, device_ca,
                                                           card_issuer):  # fmt: skip
    card = card_issuer.card()
    car, truck = Gateway("gw-car", "JTCAR00001"), Gateway("gw-truck", "JTTRUCK001")
    for gw in (car, truck):
        store.enroll(gw.device_row(device_ca, fleet="rental"))
    consents = (consent("insurer", "trip"), consent("rental", "trip", "event"))
    start = card.session_start(car, "s-1", consents=consents)
    pubs = publish(ingestor, car, (start, "session.start", "s-1"), (trip(), "trip", "s-1"),
                   (event(), "event", "s-1"))  # fmt: skip
    assert [p.topic for p in pubs] == ["msp/v1/fleet/insurer/trip", "msp/v1/fleet/rental/trip",
                                       "msp/v1/fleet/rental/event"]  # fmt: skip
    payloads = [json.loads(p.payload) for p in pubs]
    [person] = store.persons()
    insurer_name, rental_name = payloads[0]["person"], payloads[1]["person"]
    assert insurer_name != rental_name and person.id not in (insurer_name, rental_name)
    assert payloads[2]["person"] == rental_name
    assert payloads[1]["body"]["distance_km"] == 12.0 and payloads[1]["jws"].count(".") == 2
    for p in pubs:
        assert person.id.encode() not in p.payload and person.key_sha256.encode() not in p.payload
    # the same person in another vehicle: the same name for the same fleet
    pubs = publish(ingestor, truck,
                   (card.session_start(truck, "s-2", consents=consents), "session.start", "s-2"),
                   (trip(), "trip", "s-2"))  # fmt: skip
    assert json.loads(pubs[1].payload)["person"] == rental_name


def test_expired_or_missing_consent_sends_nothing(ingestor, store, device_ca, card_issuer):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca))
    expired = (consent("acme", "trip", "event", until=format_ts(T0 - 1)),)
    start = card_issuer.card().session_start(gw, "s-1", consents=expired)
    assert publish(ingestor, gw, (start, "session.start", "s-1"), (trip(), "trip", "s-1"),
                   (event(), "event", "s-1")) == []  # fmt: skip


def test_tiers_without_a_driver(ingestor, store, device_ca):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    crash = bodies.Emergency(format_ts(T0), "crash_flag", 31.0, 54.0, None)
    stats = bodies.Stats("2026-11-18T10:00:00Z", "xn76ur", 12.0, 900.0, 48.0, None)
    health = bodies.Health(60.0, 3, 2048, 120.0, {}, 0, 0)
    pubs = publish(ingestor, gw, (trip(), "trip", None), (crash, "emergency", None),
                   (stats, "stats", None), (health, "health", None))  # fmt: skip
    assert [p.topic for p in pubs] == ["msp/v1/fleet/acme/trip", "msp/v1/fleet/acme/emergency",
                                       "msp/v1/public/stats"]  # fmt: skip
    assert json.loads(pubs[0].payload)["person"] is None
    public = pubs[2].payload
    assert b"JTCAR00001" not in public and b"gw-1" not in public
    assert json.loads(public)["body"]["area"] == "xn76ur"


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
            wait_for(lambda: len(got["acme"]) == 4, "acme's dtc and three trips")
            wait_for(lambda: deployment.stats()["counts"]["fanout"] == 0, "fan-out acked")
        assert uplink.stats().acked == 3
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
    assert got == {"acme": ["msp/v1/fleet/acme/dtc"] + ["msp/v1/fleet/acme/trip"] * 3,
                   "other": []}  # fmt: skip



def test_fanout_is_committed_with_the_records(store, device_ca, card_issuer):
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca, fleet="acme"))
    ingestor = Ingestor(store, card_issuer.anchors(), fanout=Republisher(store).publications)
    tokens = [gw.sign(trip(), "trip"), gw.sign(trip(), "trip")]
    ingestor.process([(rec_topic("gw-1"), t.encode()) for t in tokens])
    ingestor.process([(rec_topic("gw-1"), tokens[0].encode())])  # a duplicate fans out nothing
    pending = store.fanout_pending(10)
    assert [p.topic for _, p in pending] == ["msp/v1/fleet/acme/trip"] * 2
    assert [json.loads(p.payload)["seq"] for _, p in pending] == [1, 2]
    store.fanout_done([pending[0][0]])
    assert [i for i, _ in store.fanout_pending(10)] == [pending[1][0]]
