"""Consent as the person's own act, end to end: real mosquitto on the generated configuration,
the registry as a child process, the gateway's outbox and uplink, the virtual card behind a
real pcscd, and ``msp-agent card consent revoke`` / ``card my-data`` as the driver runs them.

The gateway goes offline with a backlog; the driver revokes at the gateway; when the gateway
comes back the revocation travels ahead of the backlog, the registry applies it before the
records ahead of it in the chain, the fleet's feed stops at the revocation's signing time,
the retained score is withdrawn, and the person's exchange log (read sealed with ``my-data``)
lists exactly what the fleet received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from cloud_sync.store import Withheld
from cloud_sync.store.sqlite import SqliteStore
from edge_agent.card.image import make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.pcsc import PcscTransport
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard
from edge_agent.cli import main as agent_main
from edge_agent.identity.binding import Consent, iso_utc
from edge_agent.identity.pin_entry import FixedPinEntry
from edge_agent.identity.session import LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.records import session_start_body
from edge_agent.uplink import MqttUplink
from msp_protocol import bodies
from msp_protocol.records import format_ts, parse_ts
from tests.cloud_sync.test_fleets import Subscriber
from tests.sync_deploy import Deployment, GatewaySetup, UplinkThread, wait_for

PIN = "1234"
FLEET = "haul"
BACKLOG = 24


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


def trip_ending(end: float, km: float = 10.0, points: float = 2.0) -> bodies.Trip:
    """A trip of 10 minutes ending at ``end`` (epoch seconds)."""
    return bodies.Trip(format_ts(end - 600), format_ts(end), km, None, 600.0, 70.0, None, None,
                       20.0, 0.0, {"harsh_braking": 1}, points, 80.0)  # fmt: skip


@dataclass
class ConsentKit:
    """A deployment (mosquitto, the registry's CLI; the registry process not yet started)
    whose registry trusts a test card issuer, one enrolled gateway in fleet ``haul``, the
    fleet's credentials and the recipients list the gateway installs."""

    issuer: TestIssuer
    anchor: Path
    deploy: Deployment
    gw: GatewaySetup
    creds: Path
    recipients: Path

    @classmethod
    def make(cls, tmp_path: Path) -> ConsentKit:
        issuer = TestIssuer.create()
        anchors = tmp_path / "anchors"
        anchors.mkdir()
        anchor = anchors / "test-jpki.pem"
        issuer.save(anchor, tmp_path / "test-jpki.key")
        deploy = Deployment(tmp_path / "deploy", SimpleNamespace(directory=anchors))  # type: ignore[arg-type]
        deploy.configure()
        assert deploy.broker is not None
        gw = deploy.enroll_gateway("gw-con1", "JTCON000001", fleet=FLEET)
        creds = tmp_path / "creds"
        assert deploy.registry("fleet", "add", FLEET, "--out", str(creds)) == 0
        deploy.configure()  # the broker learns the fleet's user from the configuration
        deploy.broker.start()
        recipients = tmp_path / "recipients.json"
        assert deploy.registry("recipients", "--out", str(recipients)) == 0
        return cls(issuer, anchor, deploy, gw, creds, recipients)

    def card_args(self) -> list[str]:
        return card_args(self.gw, self.anchor, self.recipients)

    def reply_args(self) -> list[str]:
        return ["--broker", f"mqtts://127.0.0.1:{self.deploy.device_port}",
                "--ca", str(self.deploy.brokerdir / "device-ca.pem"),
                "--cert", str(self.gw.cert), "--timeout", "30"]  # fmt: skip


def card_args(gw: GatewaySetup, anchor: Path, recipients: Path) -> list[str]:
    """The options every ``msp-agent card`` act of the test shares."""
    return ["--reader", READER_NAME, "--pin", PIN, "--trust-anchor", str(anchor),
            "--outbox", str(gw.outbox_path), "--key", str(gw.key), "--device", gw.device,
            "--vin", gw.vin, "--recipients", str(recipients)]  # fmt: skip


def fleet_records(fleet: Subscriber) -> set[tuple[str, str]]:
    """(kind, device/seq) of every record copy the fleet received."""
    out = set()
    for topic, payload in fleet.received:
        kind = topic.split("/")[4]
        if kind in ("keys", "score") or not payload:
            continue
        value = json.loads(payload)
        out.add((kind, f"{value['device']}/{value['seq']}"))
    return out


def test_a_revocation_at_the_gateway_stops_the_fleet_feed_and_the_log_shows_what_it_got(
    tmp_path: Path, pcscd: PrivatePcscd, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = ConsentKit.make(tmp_path)
    issuer, anchor, deploy, gw, creds, recipients = (kit.issuer, kit.anchor, kit.deploy, kit.gw,
                                                     kit.creds, kit.recipients)
    assert json.loads(recipients.read_text())["recipients"] == [
        {"id": FLEET, "role": "fleet"}, {"id": "public", "role": "public"}]
    fleet = Subscriber("fleet.haul", "haul-1")
    image = make_test_card(issuer, pin=PIN, licence=LicenceData(date(2030, 1, 31), ("普通",)))
    vpcd = VpcdCard(VirtualCard(image), port=pcscd.port)
    outbox: Outbox | None = None
    try:
        fleet.connect(deploy.device_port, creds / "device-ca.pem", cert=creds / "fleet.haul.pem",
                      key=creds / "fleet.haul.key")  # fmt: skip
        assert fleet.subscribe(f"msp/v1/fleet/{FLEET}/#") == ["Granted QoS 1"]
        deploy.start_registry()
        capsys.readouterr()  # what the set-up printed
        vpcd.insert()
        reader = PcscTransport(READER_NAME)
        wait_for(reader.card_present, "pcscd sees the card")

        # the driver logs in at the gateway (the real login over PC/SC), consenting to all
        until = iso_utc(datetime.now(UTC) + timedelta(days=90))
        consent = Consent(FLEET, ("driving", "score", "location"), until)
        trust = TrustStore((issuer.certificate,))
        manager = SessionManager(LoginConfig(gw.vin, gw.device, "car", trust, (consent,)),
                                 FixedPinEntry(PIN))  # fmt: skip
        session = manager.login(reader)
        reader.disconnect()
        outbox = gw.open_outbox()
        now = session.started.timestamp()  # the trips end after the login, before revoking
        outbox.append_many([
            NewRecord(session_start_body(session.start), now, session.id),
            NewRecord(trip_ending(now + 0.1, km=25.0), now + 0.1, session.id),
        ])  # fmt: skip
        uplink = MqttUplink(deploy.uplink_config(gw, window=4), outbox)
        with UplinkThread(uplink):
            wait_for(lambda: outbox.stats().rows == 0, "the first trip acked")
            wait_for(lambda: any("/score/" in t and p for t, p in fleet.received),
                     "the fleet's retained score")  # fmt: skip

        # offline: a backlog of trips driven before the revocation
        outbox.append_many([NewRecord(trip_ending(now + 0.2 + i / 100), now + 0.2 + i / 100,
                                      session.id) for i in range(BACKLOG)])  # fmt: skip
        while time.time() < now + 1.0:  # the backlog's data times lie before the revocation
            time.sleep(0.05)
        assert agent_main(["card", "consent", "revoke", FLEET, "--json",
                           *card_args(gw, anchor, recipients)]) == 0  # fmt: skip
        revoked = json.loads(capsys.readouterr().out)
        assert revoked["action"] == "revoke" and revoked["categories"] == []
        signed_at = parse_ts(revoked["signed_at"])
        after = signed_at.timestamp() + 1
        outbox.append_many([NewRecord(trip_ending(after + i), after + i, session.id)
                            for i in range(2)])  # driving on after the revocation  # fmt: skip
        assert outbox.stats().last_seq == 2 + BACKLOG + 1 + 2

        # back online: the revocation goes ahead of the backlog (window 4: several rounds)
        uplink = MqttUplink(deploy.uplink_config(gw, window=4), outbox)
        sent, sent_wall = time.monotonic(), datetime.now(UTC)
        with UplinkThread(uplink):
            wait_for(lambda: outbox.stats().rows == 0, "the backlog acked")
        wait_for(lambda: deploy.stats()["counts"]["fanout"] == 0, "the fan-out delivered")
        took = time.monotonic() - sent  # reported, not asserted (no timing assertions)

        # the person reads their exchange log, sealed to a key only this command held; the
        # agent's uplink (running) sends the request record
        uplink = MqttUplink(deploy.uplink_config(gw), outbox)
        with UplinkThread(uplink):
            assert agent_main(["card", "my-data", "--json", *card_args(gw, anchor, recipients),
                               "--broker", f"mqtts://127.0.0.1:{deploy.device_port}",
                               "--ca", str(deploy.brokerdir / "device-ca.pem"),
                               "--cert", str(gw.cert), "--timeout", "30"]) == 0  # fmt: skip
        mine = json.loads(capsys.readouterr().out)
    finally:
        vpcd.remove()
        fleet.close()
        if outbox is not None:
            outbox.close()
        deploy.stop()

    store = SqliteStore(deploy.db)
    try:
        (person,) = [p.id for p in store.persons()]
        (statement,) = store.consent_statements(person)
        first_backlog = store._conn.execute(  # read-only look: when the backlog arrived
            "SELECT min(received_at), max(received_at) FROM records WHERE device = ? AND seq > 2"
            " AND kind = 'trip'", (gw.device,)).fetchone()  # fmt: skip
        withheld = store.withheld()
        exchanges = store.exchanges(person)
    finally:
        store.close()
    # applied at once: before the backlog ahead of it in the chain was committed
    assert statement.statement.action == "revoke" and statement.seq == 2 + BACKLOG + 1
    assert statement.received_at is not None and statement.received_at < first_backlog[0]
    applied = (parse_ts(statement.received_at) - sent_wall).total_seconds()
    print(f"revocation applied {applied:.2f} s after the gateway came back; the backlog of "
          f"{BACKLOG + 3} records behind it took {took:.2f} s")  # reported, not asserted
    # the fleet got the session, the first trip and the backlog (all before the revocation),
    # not the two trips after it
    expected = {("session.start", f"{gw.device}/1")} | {
        ("trip", f"{gw.device}/{seq}") for seq in range(2, 2 + BACKLOG + 1)}
    assert fleet_records(fleet) == expected
    assert withheld[Withheld(FLEET, "trip", "revoked")] == 2
    # the retained score: one score, then withdrawn (empty retained), nothing after
    scores = [p for t, p in fleet.received if "/score/" in t]
    assert len(scores) == 2 and scores[0] != b"" and scores[1] == b""
    # the exchange log lists exactly what the fleet received, each with its consent
    delivered = {(row.exchange.kind, row.exchange.record) for row in exchanges
                 if row.exchange.kind != "score"}
    assert delivered == expected
    assert all(row.status == "delivered" for row in exchanges)
    assert {row.exchange.consent for row in exchanges} == {f"session:{session.id}"}
    assert [(r.exchange.kind, r.exchange.record) for r in exchanges if r.exchange.kind == "score"
            ] == [("score", f"{gw.device}/2")]  # fmt: skip
    # ... and so does the answer the person read
    assert {(e["kind"], e["record"]) for e in mine["exchanges"]} == expected | {
        ("score", f"{gw.device}/2")}
    assert mine["consents"]["statements"][0]["action"] == "revoke"
    assert "exchanges" not in (deploy.root / "registry.log").read_text()  # sealed, not logged
