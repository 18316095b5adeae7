"""Fleet operators end to end on real mosquitto (the generated configuration): two persons,
three vehicles in two fleets, one person driving in both; consent, expiry, withholding,
location stripping, the portable score, the broker's ACL, and a scan of every byte a fleet
receives for anything that identifies the card."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync import cli as registry_cli
from cloud_sync.fleet_watch import FleetChecker
from cloud_sync.republish import fleet_pseudonym, score_of
from cloud_sync.store import Withheld
from cloud_sync.store.sqlite import SqliteStore
from edge_agent.outbox import NewRecord
from edge_agent.uplink import MqttUplink
from msp_protocol import bodies
from msp_protocol.jws import b64url
from msp_protocol.records import format_ts, parse_ts
from tests.sync_deploy import Deployment, GatewaySetup, UplinkThread, wait_for
from tests.sync_kit import T0, Card, event, trip

UNTIL = "2027-06-01T00:00:00.000Z"


@dataclass
class Subscriber:
    """A fleet operator's raw MQTT client: keeps every byte received and every SUBACK."""

    name: str
    client_id: str
    received: list[tuple[str, bytes]] = field(default_factory=list)
    subacks: list[list[str]] = field(default_factory=list)
    pubacks: list[str] = field(default_factory=list)
    client: mqtt.Client | None = None

    def connect(self, port: int, ca: Path, *, cert: Path | None = None, key: Path | None = None,
                password: str | None = None) -> None:  # fmt: skip
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)  # fmt: skip
        client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                       keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
        if password is not None:
            client.username_pw_set(self.name, password)
        connected = threading.Event()
        client.on_connect = lambda *_a: connected.set()
        client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.append(
            [str(rc) for rc in rcs])
        client.on_publish = lambda _c, _u, _m, rc, _p: self.pubacks.append(str(rc))
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        wait_for(connected.is_set, f"{self.name} connected")

    def subscribe(self, *filters: str) -> list[str]:
        assert self.client is not None
        before = len(self.subacks)
        for f in filters:
            self.client.subscribe(f, qos=1)
        wait_for(lambda: len(self.subacks) == before + len(filters), f"{self.name} subacks")
        return [code for codes in self.subacks[before:] for code in codes]

    def topics(self) -> list[str]:
        return [t for t, _ in self.received]

    def values(self, kind: str) -> list[dict[str, object]]:
        return [json.loads(p) for t, p in self.received if t.split("/")[4] == kind and p]

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def drive(deployment: Deployment, gw: GatewaySetup, records: list[NewRecord]) -> None:
    """Put records into the gateway's outbox and upload them until all are acked."""
    outbox = gw.open_outbox()
    outbox.append_many(records)
    uplink = MqttUplink(deployment.uplink_config(gw), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: uplink.stats().acked >= len(records), f"{gw.device} acked")


def login(card: Card, gw: GatewaySetup, session: str, *consents: bodies.Consent,
          at: float) -> NewRecord:  # fmt: skip
    start = card.session_start(gw, session, consents=consents,  # type: ignore[arg-type]
                               started_at=format_ts(at))
    return NewRecord(start, at, session)


def identifying_strings(card: Card, store: SqliteStore) -> list[bytes]:
    """What must never reach a fleet: the certificate, its fingerprints, serial, internal ids."""
    der = card.der
    digest = hashlib.sha256(der).digest()
    out = [base64.b64encode(der)[:64], base64.b64encode(der)[-64:], b64url(digest).encode(),
           digest.hex().encode(), str(card.cert.serial_number).encode(),
           format(card.cert.serial_number, "x").encode()]  # fmt: skip
    for person in store.persons():
        out += [person.id.encode(), person.key_sha256.encode()]
    return out


def test_two_fleets_consent_score_and_acl(deployment: Deployment, card_issuer, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    van1 = deployment.enroll_gateway("gw-van1", "JTVAN000001", fleet="haul")
    van2 = deployment.enroll_gateway("gw-van2", "JTVAN000002", fleet="haul")
    car = deployment.enroll_gateway("gw-rent1", "JTRENT00001", fleet="rental")
    creds = tmp_path / "creds"
    assert deployment.registry("fleet", "add", "haul", "--out", str(creds)) == 0
    assert deployment.registry("fleet", "add", "rental", "--out", str(creds), "--password") == 0
    assert deployment.broker is not None
    deployment.broker.stop()  # the broker learns fleet users from the regenerated configuration
    deployment.configure()
    deployment.broker.start()
    ca = creds / "device-ca.pem"
    haul, rental = Subscriber("fleet.haul", "haul-1"), Subscriber("fleet.rental", "rental-1")
    nosy = Subscriber("fleet.haul", "haul-2")
    try:
        haul.connect(deployment.device_port, ca, cert=creds / "fleet.haul.pem",
                     key=creds / "fleet.haul.key")  # fmt: skip
        assert haul.subscribe("msp/v1/fleet/haul/#") == ["Granted QoS 1"]
        password = (creds / "fleet.rental.secret").read_text().strip()
        rental.connect(deployment.fleet_port, ca, password=password)
        assert rental.subscribe("msp/v1/fleet/rental/#") == ["Granted QoS 1"]
        # haul's credentials asking for rental's feed and the gateways' topics
        nosy.connect(deployment.device_port, ca, cert=creds / "fleet.haul.pem",
                     key=creds / "fleet.haul.key")  # fmt: skip
        # mosquitto 2.0 grants the SUBSCRIBE and applies the read ACL to each message
        nosy.subscribe("msp/v1/fleet/rental/#", "msp/v1/dev/+/rec", "msp/v1/dev/gw-van1/ack")
        assert nosy.client is not None
        nosy.client.publish("msp/v1/fleet/haul/trip", b"{}", qos=1)  # fleets only read
        wait_for(lambda: nosy.pubacks != [], "the refused publish's PUBACK")
        assert nosy.pubacks == ["Not authorized"]

        deployment.start_registry()
        alice, bob = card_issuer.card(), card_issuer.card()
        # alice in haul's van: driving consented, not location, not maintenance
        dtc = bodies.Dtc((bodies.TroubleCode("P0301", "stored"),), True, 1234.0)
        drive(deployment, van1, [
            NewRecord(dtc, T0 - 500),  # before any login: vehicle data, as is
            login(alice, van1, "s-a1", bodies.Consent("haul", ("driving",), UNTIL), at=T0),
            NewRecord(trip(30.0, 6.0), T0 + 900, "s-a1"),
            NewRecord(event(), T0 + 60, "s-a1"),
            NewRecord(dtc, T0 + 950, "s-a1"),  # maintenance: withheld
        ])  # fmt: skip
        # bob in haul's other van: everything, but the consent ends mid-session
        ends = format_ts(T0 + 5000)
        drive(deployment, van2, [
            login(bob, van2, "s-b1", bodies.Consent(
                "haul", ("driving", "maintenance", "location"), ends), at=T0),
            NewRecord(event(), T0 + 100, "s-b1"),
            NewRecord(trip(40.0, 2.0, day=0), T0 + 9000, "s-b1"),  # after the expiry
        ])  # fmt: skip
        # two keys; van1: its own dtc, alice's start, trip, event; van2: bob's start, event
        wait_for(lambda: len(haul.received) >= 2 + 4 + 2, "haul's keys and records")
        assert not any("/score/" in t for t in rental.topics())  # no score consent yet
        # alice rents a car and lets the rental company see her score
        drive(deployment, car, [
            login(alice, car, "s-a2", bodies.Consent("rental", ("driving", "score"), UNTIL),
                  at=T0 + 86400),
            NewRecord(trip(25.0, 0.0, day=1), T0 + 86400 + 900, "s-a2"),
        ])  # fmt: skip
        wait_for(lambda: any("/score/" in t for t in rental.topics()), "rental's score")
        # bob rents the car too, letting rental see his score only until a past instant: the
        # score goes out (his trip is within the consent), then the registry withdraws it
        drive(deployment, car, [
            login(bob, car, "s-b2", bodies.Consent("rental", ("driving", "score"),
                                                   format_ts(T0 + 2 * 86400)), at=T0 + 86400),
            NewRecord(trip(25.0, 5.0, day=1), T0 + 86400 + 900, "s-b2"),
        ])  # fmt: skip
        wait_for(lambda: any(p == b"" for t, p in rental.received if "/score/" in t),
                 "bob's score withdrawn")  # fmt: skip
        wait_for(lambda: deployment.stats()["counts"]["fanout"] == 0, "fan-out delivered")
    finally:
        for s in (haul, rental, nosy):
            s.close()

    store = SqliteStore(deployment.db)
    try:
        persons = {p.id for p in store.persons()}
        alice_id = next(s.person_id for s in store.sessions() if s.id == "s-a1")
        bob_id = next(s.person_id for s in store.sessions() if s.id == "s-b1")
        assert persons == {alice_id, bob_id}
        secret = store.pseudonym_secret()
        withheld = store.withheld()
        rental_at = parse_ts(trip(25.0, 0.0, day=1).end)
        expected_score = round(score_of(store, alice_id, rental_at), 1)
        secrets = identifying_strings(alice, store) + identifying_strings(bob, store)
    finally:
        store.close()

    # each fleet sees its own vehicles only
    assert {t.split("/")[4] for t in haul.topics()} == {"keys", "dtc", "session.start", "trip",
                                                        "event"}  # fmt: skip
    assert {v["vin"] for k in ("dtc", "trip", "event") for v in haul.values(k)} == {
        "JTVAN000001", "JTVAN000002"}
    assert {v["vin"] for v in rental.values("trip")} == {"JTRENT00001"}
    assert len(rental.values("trip")) == 2  # alice's and bob's
    assert {v["device"] for v in rental.values("keys")} == {"gw-rent1"}
    # a different pseudonym for alice in each fleet, the same within a fleet
    alice_haul = fleet_pseudonym(secret, "haul", alice_id)
    alice_rental = fleet_pseudonym(secret, "rental", alice_id)
    assert {v["person"] for v in haul.values("trip") if v["vin"] == "JTVAN000001"} == {alice_haul}
    assert rental.values("trip")[0]["person"] == alice_rental != alice_haul
    # only consented categories: alice's in-session dtc withheld, the vehicle's own one not
    assert [v["person"] for v in haul.values("dtc")] == [None]
    assert withheld[Withheld("haul", "dtc", "not_consented")] == 1
    # bob's trip ended after his consent expired: withheld; his event (before) went through
    assert [v["vin"] for v in haul.values("trip")] == ["JTVAN000001"]
    assert withheld[Withheld("haul", "trip", "expired")] == 1
    # location: stripped for alice (not consented), kept for bob
    events = {v["vin"]: v for v in haul.values("event")}
    assert events["JTVAN000001"]["body"]["location"] is None
    assert events["JTVAN000001"]["redacted"] == ["body.location"]
    assert events["JTVAN000002"]["body"]["location"] == {"lat": 35.68, "lon": 139.76}
    # the rental company sees alice's score pooled with the trip in haul's van
    alice_score, bob_score = rental.values("score")
    assert alice_score["person"] == alice_rental and alice_score["score"] == expected_score < 100
    bob_rental = fleet_pseudonym(secret, "rental", bob_id)
    assert bob_score["person"] == bob_rental and bob_score["until"] == format_ts(T0 + 2 * 86400)
    withdrawn = [t for t, p in rental.received if p == b""]
    assert withdrawn == [f"msp/v1/fleet/rental/score/{bob_rental}"]
    assert haul.values("score") == []
    # the fleet can check every signed copy itself against the keys it was sent
    # and the registry's signature on the scores, with the key every user may read (retained)
    keyreader = Subscriber("fleet.haul", "haul-key")
    keyreader.connect(deployment.device_port, ca, cert=creds / "fleet.haul.pem",
                      key=creds / "fleet.haul.key")  # fmt: skip
    try:
        assert keyreader.subscribe("msp/v1/registry/key") == ["Granted QoS 1"]
        wait_for(lambda: bool(keyreader.received), "the retained registry key")
    finally:
        keyreader.close()
    for sub, fleet in ((haul, "haul"), (rental, "rental")):
        checker = FleetChecker(fleet)
        checks = [m.check for t, p in keyreader.received + sub.received
                  for m in checker.feed(t, p)]  # fmt: skip
        assert not [c for c in checks if c.startswith("REJECTED")]
        assert checker.registry_key is not None  # the scores' signatures were checked
        assert checks.count("verified") == sum(
            1 for _, p in sub.received if p and json.loads(p).get("jws"))
    # the broker gave haul's credentials nothing outside haul's feed, though rental's feed,
    # the gateways' records and acks all flowed meanwhile
    assert rental.received and nosy.received == []
    # nothing any fleet received identifies the card or the registry's person
    for _topic, payload in haul.received + rental.received:
        for secret_bytes in secrets:
            assert secret_bytes not in payload

    # the operator's view of what was withheld
    assert {"fleet": "haul", "kind": "trip", "reason": "expired", "count": 1} in \
        deployment.stats()["withheld"]
    capsys.readouterr()
    assert deployment.registry("fleet", "list", "--json") == 0
    assert [(f["fleet"], f["login"], f["withheld"]) for f in json.loads(capsys.readouterr().out)] \
        == [("haul", "certificate", 3), ("rental", "certificate+password", 0)]

    # the reference subscriber: both fleets side by side, every JWS checked; a late
    # subscriber gets what is retained: the device keys and rental's score of alice
    capsys.readouterr()
    tls = ["--broker", f"mqtts://127.0.0.1:{deployment.device_port}", "--tls-ca", str(ca)]
    assert registry_cli.main(["fleet", "watch", "haul", "rental", "--creds", str(creds), *tls,
                              "--timeout", "2", "--json"]) == 0  # fmt: skip
    seen = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(m["fleet"], m["kind"], m["check"]) for m in seen} == {
        ("haul", "keys", "registry"), ("rental", "keys", "registry"),
        ("rental", "score", "registry")}
    assert [m["message"]["score"] for m in seen if m["kind"] == "score"] == [expected_score]
    # with the password instead of a certificate, on the fleet listener; --count stops it
    assert registry_cli.main([
        "fleet", "watch", "rental", "--password-file", str(creds / "fleet.rental.secret"),
        "--broker", f"mqtts://127.0.0.1:{deployment.fleet_port}", "--tls-ca", str(ca),
        "--count", "1", "--timeout", "10"]) == 0  # fmt: skip
    assert f"score {alice_rental} = {expected_score}" in capsys.readouterr().out
    # a wrong password is refused by the broker, and said so
    (tmp_path / "wrong").write_text("not-the-password\n")
    assert registry_cli.main([
        "fleet", "watch", "rental", "--password-file", str(tmp_path / "wrong"),
        "--broker", f"mqtts://127.0.0.1:{deployment.fleet_port}", "--tls-ca", str(ca),
        "--timeout", "10"]) == 2  # fmt: skip
    assert "refused fleet.rental" in capsys.readouterr().err

    # the registry answers the rental company's score question, and only with consent
    out = subprocess.run([sys.executable, "-m", "cloud_sync.cli", "score", alice_rental,
                          "--fleet", "rental", "--json", "--db", str(deployment.db),
                          "--at", format_ts(rental_at.timestamp())],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["score"] == expected_score
    refused = deployment.registry("score", alice_haul, "--fleet", "haul")
    assert refused == 2  # alice never consented her score to haul
