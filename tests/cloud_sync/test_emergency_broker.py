"""A crash, end to end on real parts: mosquitto on the generated configuration (ACLs by role),
the registry as a child process, the gateway's outbox and uplink, the virtual card behind a
real pcscd, and the driver's ``msp-agent card consent grant`` / ``card emergency-profile set``.

The responder the consent names receives, within a bounded wait, the crash's time, position,
vehicle and the sealed profile, which ``msp-registry responder watch --key`` verifies and
opens; the latency (arrival at the responder minus the gateway's publish, seen by a second
subscriber on the record topic) is printed, never asserted. Before the crash the responder
receives nothing; the responder the consent does not name receives nothing at all.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync import cli as registry_cli
from edge_agent.card.image import make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.pcsc import PcscTransport
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard
from edge_agent.cli import main as agent_main
from edge_agent.identity.pin_entry import FixedPinEntry
from edge_agent.identity.session import LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.outbox import NewRecord
from edge_agent.records import session_start_body
from edge_agent.uplink import MqttUplink
from msp_protocol import bodies
from msp_protocol.records import format_ts
from tests.cloud_sync.recipient_kit import PROFILE
from tests.cloud_sync.test_consent_flow import card_args
from tests.sync_deploy import Deployment, UplinkThread, wait_for

PIN = "1234"
RESPONDER = "ambulance-kanto"
OTHER = "ambulance-kansai"
#: How long a crash notice may take to arrive before the test calls it lost (not a timing
#: assertion: a bound on the wait; the latency itself is printed).
DELIVERY_BOUND_S = 15.0


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


@dataclass
class Timed:
    """A raw MQTT client that keeps every message with its arrival instant (monotonic)."""

    name: str
    received: list[tuple[float, str, bytes]] = field(default_factory=list)
    client: mqtt.Client | None = None

    def connect(self, port: int, *, ca: Path | None = None, cert: Path | None = None,
                key: Path | None = None, password: str | None = None) -> None:  # fmt: skip
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.name}-timed",
                             protocol=mqtt.MQTTv5)  # fmt: skip
        if ca is not None:
            client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                           keyfile=str(key) if key else None, cert_reqs=ssl.CERT_REQUIRED)
        if password is not None:
            client.username_pw_set(self.name, password)
        subscribed = threading.Event()
        client.on_message = lambda _c, _u, m: self.received.append(
            (time.monotonic(), m.topic, m.payload))
        client.on_subscribe = lambda *_a: subscribed.set()
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        self._subscribed = subscribed

    def subscribe(self, topic: str) -> None:
        assert self.client is not None
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        wait_for(self._subscribed.is_set, f"{self.name} subscribed")

    def on(self, suffix: str) -> list[tuple[float, bytes]]:
        return [(t, p) for t, topic, p in self.received if topic.endswith(suffix) and p]

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def test_a_crash_reaches_the_named_responder_with_location_and_profile(
    tmp_path: Path, pcscd: PrivatePcscd, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = TestIssuer.create()
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    anchor = anchors / "test-jpki.pem"
    issuer.save(anchor, tmp_path / "test-jpki.key")
    deploy = Deployment(tmp_path / "deploy", SimpleNamespace(directory=anchors))  # type: ignore[arg-type]
    deploy.configure()
    assert deploy.broker is not None
    gw = deploy.enroll_gateway("gw-amb1", "JTAMB000001", fleet="taxi")
    creds = tmp_path / "creds"
    for name in (RESPONDER, OTHER):
        assert deploy.registry("recipient", "add", name, "--role", "responder",
                               "--out", str(creds)) == 0  # fmt: skip
    deploy.configure()  # the broker learns the responders' users from the configuration
    acl = (deploy.brokerdir / "acl").read_text()
    assert f"user responder.{RESPONDER}\ntopic read msp/v1/responder/{RESPONDER}/#" in acl
    deploy.broker.start()
    recipients = tmp_path / "recipients.json"
    assert deploy.registry("recipients", "--out", str(recipients)) == 0
    profile_file = tmp_path / "profile.json"
    profile_file.write_text(json.dumps(PROFILE))
    responder, other, observer = Timed(f"responder.{RESPONDER}"), Timed(f"responder.{OTHER}"), \
        Timed("registry")
    image = make_test_card(issuer, pin=PIN, licence=LicenceData(date(2030, 1, 31), ("普通",)))
    vpcd = VpcdCard(VirtualCard(image), port=pcscd.port)
    watch_out: list[int] = []
    try:
        ca = creds / "device-ca.pem"
        for client, name in ((responder, RESPONDER), (other, OTHER)):
            client.connect(deploy.device_port, ca=ca, cert=creds / f"responder.{name}.pem",
                           key=creds / f"responder.{name}.key")  # fmt: skip
            client.subscribe(f"msp/v1/responder/{name}/#")
        assert deploy.files is not None
        observer.connect(deploy.registry_port,
                         password=deploy.files.registry_secret.read_text().strip())
        observer.subscribe(f"msp/v1/dev/{gw.device}/rec")
        deploy.start_registry()
        vpcd.insert()
        reader = PcscTransport(READER_NAME)
        wait_for(reader.card_present, "pcscd sees the card")
        trust = TrustStore((issuer.certificate,))
        session = SessionManager(LoginConfig(gw.vin, gw.device, "car", trust, ()),
                                 FixedPinEntry(PIN)).login(reader)  # fmt: skip
        reader.disconnect()
        outbox = gw.open_outbox()
        now = session.started.timestamp()
        outbox.append_many([NewRecord(session_start_body(session.start), now, session.id)])
        uplink = MqttUplink(deploy.uplink_config(gw), outbox)
        with UplinkThread(uplink):
            wait_for(lambda: outbox.stats().rows == 0, "the session start acked")
            args = card_args(gw, anchor, recipients)
            # a consent outside the responder's role is refused at the gateway
            assert agent_main(["card", "consent", "grant", RESPONDER, "--categories",
                               "emergency,location", *args]) == 2  # fmt: skip
            assert "may not be given location" in capsys.readouterr().err
            assert agent_main(["card", "consent", "grant", RESPONDER, "--categories",
                               "emergency", "--days", "30", *args]) == 0  # fmt: skip
            assert agent_main(["card", "emergency-profile", "set", str(profile_file),
                               "--responder", RESPONDER, *args]) == 0  # fmt: skip
            wait_for(lambda: outbox.stats().rows == 0, "consent and profile acked")
            # driving, no crash: nothing for any responder
            t = time.time()
            outbox.append_many([NewRecord(bodies.Event(
                "harsh_braking", format_ts(t), 1.0, 6.5, 50.0, "major",
                bodies.Location(35.6581, 139.7017)), t, session.id)])  # fmt: skip
            wait_for(lambda: outbox.stats().rows == 0, "the event acked")
            wait_for(lambda: deploy.stats()["counts"]["fanout"] == 0, "the fan-out delivered")
            assert responder.on("/emergency") == [] and other.received == []

            watcher = threading.Thread(target=lambda: watch_out.append(registry_cli.main([
                "responder", "watch", RESPONDER,
                "--broker", f"mqtts://127.0.0.1:{deploy.device_port}", "--tls-ca", str(ca),
                "--tls-cert", str(creds / f"responder.{RESPONDER}.pem"),
                "--tls-key", str(creds / f"responder.{RESPONDER}.key"),
                "--key", str(creds / f"{RESPONDER}.x25519"), "--count", "1",
                "--timeout", "20"])), daemon=True)  # fmt: skip
            watcher.start()
            time.sleep(1.0)  # let the watcher subscribe (it stops after one notice)
            capsys.readouterr()
            crash_at = time.time()
            appended = time.monotonic()
            outbox.append_many([NewRecord(bodies.Emergency(
                format_ts(crash_at), "crash_flag", 118.0, 46.0,
                bodies.Location(35.6581, 139.7017)), crash_at, session.id)])  # fmt: skip
            wait_for(lambda: bool(responder.on("/emergency")), "the crash notice",
                     timeout=DELIVERY_BOUND_S)  # fmt: skip
            watcher.join(timeout=25)
        arrived = responder.on("/emergency")[0][0]
        published = observer.on("/rec")[-1][0]
        printed = capsys.readouterr().out
        print(f"crash -> responder: {1000 * (arrived - published):.0f} ms after the gateway's "
              f"publish ({1000 * (arrived - appended):.0f} ms after the outbox append)")
        assert watch_out == [0], printed
        assert "EMERGENCY: crash" in printed and "at 35.65810, 139.70170" in printed
        assert "blood type: AB-" in printed and "warfarin-xk2" in printed
        assert len(responder.on("/emergency")) == 1
        time.sleep(1.0)
        assert other.received == []  # the consent does not name it: nothing, ever
    finally:
        vpcd.remove()
        for client in (responder, other, observer):
            client.close()
        deploy.stop()
    # nothing the registry keeps (database, its WAL, secrets, log, broker persistence) holds
    # the profile in the clear
    kept = [p for p in deploy.root.rglob("*") if p.is_file()]
    assert deploy.db in kept
    for value in (b"warfarin-xk2", b"penicillin-zq7", b"+81-90-5555-0142"):
        assert not [p for p in kept if value in p.read_bytes()], value
