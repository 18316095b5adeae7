"""Guardians end to end on real parts: mosquitto with the role ACLs, the registry as a child
process, the gateway's outbox and uplink, the virtual card behind a real pcscd and the driver's
``msp-agent card consent grant|revoke``. An elderly driver's pedal misapplication reaches the
guardian; a minor event does not; after the revocation nothing does; another guardian, whom
no consent names, receives nothing; ``msp-registry guardian watch`` prints it readably."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

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
from tests.cloud_sync.recipient_kit import GUARDIAN
from tests.cloud_sync.test_consent_flow import card_args
from tests.cloud_sync.test_emergency_broker import Timed
from tests.sync_deploy import Deployment, UplinkThread, wait_for

PIN = "1234"
OTHER = "family-kato"


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


def event_at(kind: str, severity: str) -> NewRecord:
    t = time.time()
    return NewRecord(bodies.Event(kind, format_ts(t), 1.5, 0.9, 14.0, severity,
                                  bodies.Location(35.0, 139.0)), t, None)  # fmt: skip


def test_an_elderly_driver_s_pedal_misapplication_reaches_the_guardian(
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
    gw = deploy.enroll_gateway("gw-eld1", "JTELD000001", fleet="home")
    creds = tmp_path / "creds"
    for name in (GUARDIAN, OTHER):
        assert deploy.registry("recipient", "add", name, "--role", "guardian",
                               "--out", str(creds)) == 0  # fmt: skip
    deploy.configure()
    deploy.broker.start()
    recipients = tmp_path / "recipients.json"
    assert deploy.registry("recipients", "--out", str(recipients)) == 0
    guardian, other = Timed(f"guardian.{GUARDIAN}"), Timed(f"guardian.{OTHER}")
    image = make_test_card(issuer, pin=PIN, licence=LicenceData(date(2030, 1, 31), ("普通",)))
    vpcd = VpcdCard(VirtualCard(image), port=pcscd.port)
    codes: list[int] = []
    try:
        ca = creds / "device-ca.pem"
        for client, name in ((guardian, GUARDIAN), (other, OTHER)):
            client.connect(deploy.device_port, ca=ca, cert=creds / f"guardian.{name}.pem",
                           key=creds / f"guardian.{name}.key")  # fmt: skip
            client.subscribe(f"msp/v1/guardian/{name}/#")
        deploy.start_registry()
        vpcd.insert()
        reader = PcscTransport(READER_NAME)
        wait_for(reader.card_present, "pcscd sees the card")
        session = SessionManager(LoginConfig(gw.vin, gw.device, "car",
                                             TrustStore((issuer.certificate,)), ()),
                                 FixedPinEntry(PIN)).login(reader)  # fmt: skip
        reader.disconnect()
        outbox = gw.open_outbox()
        outbox.append_many([NewRecord(session_start_body(session.start),
                                      session.started.timestamp(), session.id)])  # fmt: skip
        args = card_args(gw, anchor, recipients)

        def drive(*records: NewRecord) -> None:
            outbox.append_many([NewRecord(r.body, r.ts, session.id) for r in records])
            wait_for(lambda: outbox.stats().rows == 0, "the records acked")
            wait_for(lambda: deploy.stats()["counts"]["fanout"] == 0, "the fan-out delivered")

        watcher = threading.Thread(target=lambda: codes.append(registry_cli.main([
            "guardian", "watch", GUARDIAN,
            "--broker", f"mqtts://127.0.0.1:{deploy.device_port}", "--tls-ca", str(ca),
            "--tls-cert", str(creds / f"guardian.{GUARDIAN}.pem"),
            "--tls-key", str(creds / f"guardian.{GUARDIAN}.key"), "--count", "1",
            "--timeout", "30"])), daemon=True)  # fmt: skip
        uplink = MqttUplink(deploy.uplink_config(gw), outbox)
        with UplinkThread(uplink):
            wait_for(lambda: outbox.stats().rows == 0, "the session start acked")
            assert agent_main(["card", "consent", "grant", GUARDIAN, "--categories",
                               "alerts", "--days", "30", *args]) == 0  # fmt: skip
            wait_for(lambda: outbox.stats().rows == 0, "the consent acked")
            watcher.start()
            time.sleep(1.0)  # the watcher subscribes
            drive(event_at("harsh_braking", "minor"), event_at("seatbelt", "critical"),
                  event_at("pedal_misapplication", "critical"))
            wait_for(lambda: bool(guardian.on("/alert")), "the guardian's alert")
            watcher.join(timeout=35)
            assert agent_main(["card", "consent", "revoke", GUARDIAN, *args]) == 0
            wait_for(lambda: outbox.stats().rows == 0, "the revocation acked")
            time.sleep(0.01)
            drive(event_at("pedal_misapplication", "critical"),
                  event_at("speeding", "major"))
        time.sleep(1.0)
        printed = capsys.readouterr().out
        assert codes == [0], printed
        alerts = guardian.on("/alert")
        assert len(alerts) == 1  # the pedal misapplication, nothing minor, nothing after
        assert "ALERT for fp-" in printed and "pedal misapplication" in printed
        assert "{" not in printed.split("ALERT", 1)[1]  # for a person, not JSON
        assert other.received == []
    finally:
        vpcd.remove()
        guardian.close()
        other.close()
        deploy.stop()
