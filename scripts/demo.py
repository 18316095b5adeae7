"""The MSP demo: two drivers, three vehicles in two fleets, one registry, end to end.

Run by ``scripts/demo`` (the README's first command). Everything is real except the cards,
which are virtual My Number Cards issued by a test CA, and the cars, which are simulated:

* two persons, Aiko and Ben, each with a card; three gateways, each with its own device key,
  enrolled with the registry: gw-0001 and gw-0002 in the haulier's fleet ``haulco``, gw-0003
  in the rental company's fleet ``rentacar``;
* for each drive: a simulated CAN log; the driver logs in with the card (PIN, licence check,
  the card signs the binding statement with the consents the driver accepts); the log is
  replayed through the agent's live path (decode, scoring, signed records into the outbox);
  the card is removed; ``msp-agent uplink`` sends the outbox through the broker (mosquitto
  with mutual TLS and ACLs when installed, else an embedded broker) to the registry;
* both fleet operators watch their feeds meanwhile; at the end the registry prints each
  person's portable score and the person ↔ vehicle sessions.

Aiko drives a haulco van, then a rentacar car twice: the first time she shares her driving
but not her score with rentacar; the second time she consents to ``score`` too, and only then
does rentacar receive her portable score, which includes the trips she drove for haulco.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from cloud_sync.local import LocalDeployment
from edge_agent.card.image import CardImage, make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.transport import InProcessTransport
from edge_agent.card.virtual import VirtualCard
from edge_agent.identity.binding import Consent, EndReason, iso_utc
from edge_agent.identity.pin_entry import FixedPinEntry
from edge_agent.identity.session import LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.identity.watcher import SessionEnded
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import Outbox
from edge_agent.replay import Replay
from edge_agent.report import collect
from edge_agent.report.html import write_html
from edge_agent.scoring import ScoringConfig
from edge_agent.simulate import simulate
from edge_agent.text import plural
from edge_agent.writer import RecordWriter

ROOT = Path(__file__).resolve().parent.parent
DEMO_MAP = ROOT / "dbc" / "msp_demo.toml"
PIN = "1234"


@dataclass(frozen=True)
class Vehicle:
    device: str
    vin: str
    fleet: str
    vehicle_class: str  # scoring's class
    licence_class: str  # what the licence must cover


@dataclass(frozen=True)
class Drive:
    person: str
    vehicle: Vehicle
    scenario: str
    seed: int
    seconds: float
    consents: tuple[str, ...]


VEHICLES = (
    Vehicle("gw-0001", "JTHAUL00000000001", "haulco", "light_truck", "truck_semi_medium"),
    Vehicle("gw-0002", "JTHAUL00000000002", "haulco", "light_truck", "truck_semi_medium"),
    Vehicle("gw-0003", "JTRENT00000000003", "rentacar", "car", "car"),
)
DRIVES = (
    Drive("Aiko", VEHICLES[0], "highway", 25, 420, ("driving", "score")),
    Drive("Ben", VEHICLES[1], "mixed", 12, 300, ("driving", "location")),
    Drive("Aiko", VEHICLES[2], "mixed", 40, 300, ("driving",)),
    Drive("Aiko", VEHICLES[2], "highway", 31, 420, ("driving", "score")),
)


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def issue_cards(out: Path) -> tuple[Path, dict[str, CardImage]]:
    """A test CA standing in for J-LIS, its certificate as the registry's trust anchor, and a
    card for each driver (licences covering semi-medium trucks)."""
    issuer = TestIssuer.create()
    anchors = out / "anchors"
    anchors.mkdir(parents=True)
    (anchors / "msp-test-ca.pem").write_bytes(
        issuer.certificate.public_bytes(serialization.Encoding.PEM)
    )
    licence = LicenceData(date(2030, 3, 31), ("普通", "準中型"))
    cards = {
        name: make_test_card(issuer, label=f"MSP demo card {i}", pin=PIN, licence=licence)
        for i, name in enumerate(("Aiko", "Ben"), 1)
    }
    return anchors, cards


def drive_once(site: LocalDeployment, out: Path, drive: Drive, card: CardImage, *,
               anchors: Path, start: datetime) -> None:  # fmt: skip
    """One drive: simulate, log in with the card, replay into the outbox, log out, upload."""
    v = drive.vehicle
    gw = out / v.device
    log = gw / f"drive-{drive.seed}.log"
    sim = simulate(log, scenario=drive.scenario, seed=drive.seed, duration=drive.seconds,
                   start_epoch=start.timestamp())  # fmt: skip
    until = iso_utc(start + timedelta(days=90))
    login = LoginConfig(
        vin=v.vin, device=v.device, vehicle_class=v.licence_class,
        trust=TrustStore.load([anchors / "msp-test-ca.pem"]),
        consents=(Consent(v.fleet, drive.consents, until),),
    )  # fmt: skip
    manager = SessionManager(login, FixedPinEntry(PIN), clock=lambda: start)
    session = manager.login(InProcessTransport(VirtualCard(card)))
    outbox = Outbox.open(gw / "outbox.db", load_signer(gw / "device.key", v.device), v.vin)
    try:
        writer = RecordWriter(outbox)
        writer.session_started(session)
        replay = Replay(log, DEMO_MAP, scoring=ScoringConfig.for_class(v.vehicle_class),
                        writer=writer)  # fmt: skip
        trip_report = collect(replay)  # replay.run(), its samples recorded for the report
        report = replay.report.to_json()
        end = start + timedelta(seconds=float(str(sim.truth["duration_s"])))
        manager.clock = lambda: end
        ended = manager.end(EndReason.CARD_REMOVED)
        assert ended is not None
        writer.session_ended(SessionEnded(ended))
        counts = dict(writer.counts)
    finally:
        outbox.close()
    trips = report["trips"]
    score = ", ".join("-" if t["score"] is None else f"{t['score']:.0f}" for t in trips)
    records = ", ".join(f"{k.removeprefix('records.')} {n}" for k, n in sorted(counts.items()))
    print(f"{drive.person} drove {v.device} ({v.fleet}): {plural(sim.frames, 'frame')}, "
          f"{sum(t['distance_km'] for t in trips):.1f} km, "
          f"{plural(len(report['events']), 'event')}, trip score {score}; "
          f"consents to {v.fleet}: {', '.join(drive.consents)}; records {records}")  # fmt: skip
    html = log.with_suffix(".html")
    write_html(trip_report, html)
    print(f"  trip report: {html.relative_to(ROOT)}")
    site.drain(v.device, gw / "outbox.db", gw / "device.key", v.vin)


def registry(site: LocalDeployment, *args: str) -> None:
    registry_bin = Path(sys.executable).with_name("msp-registry")
    subprocess.run([str(registry_bin), *args, "--db", str(site.config.db)], check=True)


def main() -> None:
    out = ROOT / "demo-out" / "site"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    anchors, cards = issue_cards(out)
    with LocalDeployment(out / "cloud", anchors) as site:
        broker = "mosquitto (mutual TLS, ACLs)" if site.embedded is None else "embedded amqtt"
        say(f"registry and broker up: {broker}")
        for v in VEHICLES:
            key = init_device_key(out / v.device / "device.key", v.device)
            site.enroll(v.device, key.csr_path, vin=v.vin, fleet=v.fleet)
            print(f"enrolled {v.device} (VIN {v.vin}) in fleet {v.fleet}")
        for fleet in ("haulco", "rentacar"):
            site.add_fleet(fleet)
        width = max(64, shutil.get_terminal_size().columns // 2)  # cut lines end in "…"
        watch = subprocess.Popen([*site.watch_command("haulco", "rentacar", timeout=600),
                                  "--width", str(width)], stdout=subprocess.PIPE,
                                 text=True)  # fmt: skip
        try:
            assert watch.stdout is not None
            header = watch.stdout.readline()  # both operators are subscribed
            say("drives (each: card login, replay through the agent, card out, upload)")
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=len(DRIVES))
            for i, drive in enumerate(DRIVES):
                drive_once(site, out, drive, cards[drive.person], anchors=anchors,
                           start=start + timedelta(hours=i))  # fmt: skip
            time.sleep(2.0)  # let the last fleet copies arrive
        finally:
            watch.terminate()
            feeds, _ = watch.communicate(timeout=10)
        say("what each fleet operator received")
        print("✓ gateway's signature verified by the operator   · published by the registry\n"
              "○ registry's copy without the original signature: positions removed (no location\n"
              "  consent), or a session start, whose original carries the card certificate")
        print(header + feeds, end="")
        say("persons and their portable scores (pooled over every vehicle they drove)")
        registry(site, "persons")
        say("sessions: the person ↔ vehicle bindings, many to many")
        registry(site, "sessions")
    print(f"\nEverything is under {out}: logs, trip reports (drive-*.html, open them in a "
          "browser), outboxes, cloud/registry.db (any SQLite tool).")


if __name__ == "__main__":
    main()
