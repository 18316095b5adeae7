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

Then recipients beyond fleets (docs/recipients.md): Ben's family (guardian ``sato-family``), his
insurer (``tokio-safe``) and two ambulance services register. Ben deposits his emergency
profile, sealed to ``ambulance-kanto`` and signed with his card, and drives with consents of
``alerts`` to his family, ``score`` and ``driving`` to the insurer and ``emergency`` to
``ambulance-kanto``; the drive ends in a crash. Each recipient's own receiver then shows what
it got: the family the dangerous events, the crash and a daily digest; the insurer the score
and a monthly summary; ``ambulance-kanto`` the crash with the opened profile;
``ambulance-kansai``, which no consent names, nothing.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from cloud_sync.broker_process import free_port
from cloud_sync.local import LocalDeployment
from cloud_sync.recipients.summaries import day_bounds, japan_day, japan_month, month_bounds
from cloud_sync.store.open import open_store
from edge_agent.card.emergency_profile import load_profile, profile_body, seal
from edge_agent.card.image import CardImage, make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.transport import InProcessTransport
from edge_agent.card.virtual import VirtualCard
from edge_agent.identity.binding import Consent, EndReason, iso_utc
from edge_agent.identity.card_acts import CardSigner, nonce
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
from msp_protocol.consent import statement_bytes

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
    #: login consents to recipients beyond the vehicle's fleet: (recipient, categories)
    others: tuple[tuple[str, tuple[str, ...]], ...] = ()
    crash: bool = False
    #: (responder, its X25519 public key, profile file): the profile deposited at login
    profile: tuple[str, str, Path] | None = None


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
                   start_epoch=start.timestamp(), crash=drive.crash)  # fmt: skip
    until = iso_utc(start + timedelta(days=90))
    login = LoginConfig(
        vin=v.vin, device=v.device, vehicle_class=v.licence_class,
        trust=TrustStore.load([anchors / "msp-test-ca.pem"]),
        consents=(Consent(v.fleet, drive.consents, until),
                  *(Consent(r, c, until) for r, c in drive.others)),
    )  # fmt: skip
    manager = SessionManager(login, FixedPinEntry(PIN), clock=lambda: start)
    session = manager.login(InProcessTransport(VirtualCard(card)))
    outbox = Outbox.open(gw / "outbox.db", load_signer(gw / "device.key", v.device), v.vin)
    try:
        writer = RecordWriter(outbox)
        writer.session_started(session)
        if drive.profile is not None:
            deposit_profile(outbox, card, drive, anchors, start)
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
    others = "".join(f"; to {r}: {', '.join(c)}" for r, c in drive.others)
    print(f"{drive.person} drove {v.device} ({v.fleet}): {plural(sim.frames, 'frame')}, "
          f"{sum(t['distance_km'] for t in trips):.1f} km, "
          f"{plural(len(report['events']), 'event')}, trip score {score}; "
          f"consents to {v.fleet}: {', '.join(drive.consents)}{others}; "
          f"records {records}")  # fmt: skip
    html = log.with_suffix(".html")
    write_html(trip_report, html)
    print(f"  trip report: {html.relative_to(ROOT)}")
    site.drain(v.device, gw / "outbox.db", gw / "device.key", v.vin)


def deposit_profile(outbox: Outbox, card: CardImage, drive: Drive, anchors: Path,
                    at: datetime) -> None:  # fmt: skip
    """``msp-agent card emergency-profile set``'s work: seal the profile to the responder,
    the card signs the statement (PIN), a ``profile`` record goes into the outbox."""
    assert drive.profile is not None
    responder, public_key, path = drive.profile
    item = seal(load_profile(path), responder, public_key, device=drive.vehicle.device,
                vin=drive.vehicle.vin, now=at, nonce=nonce())  # fmt: skip
    signer = CardSigner(TrustStore.load([anchors / "msp-test-ca.pem"]), FixedPinEntry(PIN),
                        clock=lambda: at)  # fmt: skip
    signed = signer.sign(InProcessTransport(VirtualCard(card)), statement_bytes(item.statement))
    outbox.append(profile_body(item, signed.signature_b64, signed.certificate_sha256),
                  at.timestamp())  # fmt: skip
    print(f"{drive.person} deposited an emergency profile sealed to {responder} (card-signed)")


#: Ben's emergency profile (fictitious).
PROFILE = {"blood_type": "A+", "allergies": ["penicillin"], "conditions": ["hypertension"],
           "medication": ["amlodipine 5 mg"], "emergency_contact": "Sato Hanako, 090-0000-0000"}
CARE = (("sato-family", "guardian"), ("tokio-safe", "insurer"),
        ("ambulance-kanto", "responder"), ("ambulance-kansai", "responder"))


def care(site: LocalDeployment, out: Path, cards: dict[str, CardImage], anchors: Path,
         start: datetime) -> None:  # fmt: skip
    """Recipients beyond fleets: a guardian, an insurer, two responders; Ben's crash."""
    say("recipients beyond fleets: a guardian, an insurer, two ambulance services")
    keys = {}
    for name, role in CARE:
        creds = site.add_recipient(name, role)
        if creds.sealing_key_file is not None:
            keys[name] = creds.sealing_key_file
        print(f"{role} {name}: reads only msp/v1/{role}/{name}/#")
    store = open_store(site.config.db)
    try:
        public = {r.id: r.public_key for r in store.recipients() if r.public_key}
    finally:
        store.close()
    profile = out / "ben-profile.json"
    profile.write_text(json.dumps(PROFILE, ensure_ascii=False, indent=2), encoding="utf-8")
    watchers = {name: subprocess.Popen(
        site.recipient_watch_command(role, name, *(["--key", str(keys[name])]
                                                   if name in keys else []), timeout=600),
        stdout=subprocess.PIPE, text=True) for name, role in CARE}  # fmt: skip
    try:
        time.sleep(1.5)  # every receiver subscribed
        say("Ben drives with consents beyond his fleet, and crashes")
        drive = Drive("Ben", VEHICLES[1], "city", 7, 240, ("driving",),
                      (("sato-family", ("alerts",)), ("tokio-safe", ("score", "driving")),
                       ("ambulance-kanto", ("emergency",))), crash=True,
                      profile=("ambulance-kanto", str(public["ambulance-kanto"]), profile))
        drive_once(site, out, drive, cards["Ben"], anchors=anchors, start=start)
        month = japan_month(start)
        after_month = month_bounds(month)[1] + timedelta(hours=1)
        after_day = day_bounds(japan_day(start))[1] + timedelta(hours=1)
        registry(site, "insurer", "summary", "--month", month, "--now", iso_utc(after_month))
        registry(site, "guardian", "digest", "--now", iso_utc(after_day))
        time.sleep(2.5)  # let the registry send them
    finally:
        for w in watchers.values():
            w.terminate()
        received = {name: w.communicate(timeout=10)[0] for name, w in watchers.items()}
    for name, role in CARE:
        say(f"what {role} {name} received (checked against the registry's key)")
        print(received[name].rstrip() or "nothing (no consent names it)")


def dashboard(site: LocalDeployment, fleet: str, other: str, password_file: Path) -> None:
    """Start ``msp-registry web`` on the demo's registry, log in as ``fleet`` as its operator
    would, show what the API gives it and that ``other``'s pages are refused; then say how
    to open the dashboard again."""
    port = free_port()
    registry_bin = Path(sys.executable).with_name("msp-registry")
    command = [str(registry_bin), "web", "--db", str(site.config.db), "--bind",
               f"127.0.0.1:{port}"]  # fmt: skip
    if site.embedded is None:  # mosquitto: new records reach open pages live
        command += ["--broker", f"mqtt://127.0.0.1:{site.registry_port}",
                    "--broker-password-file", str(site.brokerdir / "web.secret")]  # fmt: skip
    user, password = f"fleet.{fleet}", password_file.read_text().strip()
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    web = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path: str) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": auth})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    try:
        for _ in range(100):  # uvicorn's start
            try:
                status, vehicles = get(f"/api/v1/fleets/{fleet}/vehicles")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            print("the dashboard did not start")
            return
        _, drivers = get(f"/api/v1/fleets/{fleet}/drivers")
        refused, _ = get(f"/api/v1/fleets/{other}/vehicles")
        print(f"logged in as {user} (HTTP {status}): {plural(len(vehicles), 'vehicle')}, "
              f"{plural(len(drivers), 'driver')} under this fleet's pseudonyms")
        for d in drivers:
            score = "not yet (under 20 km)" if d["score"] is None else d["score"]
            print(f"  driver {d['pseudonym']}: portable score {score}")
        print(f"{other}'s pages for {user}: HTTP {refused}")
    finally:
        web.terminate()
        web.wait(timeout=10)
    print(f"Open it yourself: {_shown(registry_bin)} web --db {_shown(site.config.db)} "
          f"--bind 127.0.0.1:8080, then http://127.0.0.1:8080/login as {user} with the "
          f"password in {_shown(password_file)}")


def _shown(where: Path | str) -> Path | str:
    """``where`` (a path, or a database URL) relative to the project when it is inside it."""
    if isinstance(where, Path) and where.is_relative_to(ROOT):
        return where.relative_to(ROOT)
    return where


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
        haulco = site.add_fleet("haulco", password=True)  # also logs in to the dashboard
        site.add_fleet("rentacar")
        width = max(64, shutil.get_terminal_size().columns // 2)  # cut lines end in "…"
        watch = subprocess.Popen([*site.watch_command("haulco", "rentacar", timeout=600),
                                  "--width", str(width)], stdout=subprocess.PIPE,
                                 text=True)  # fmt: skip
        try:
            assert watch.stdout is not None
            header = watch.stdout.readline()  # both operators are subscribed
            say("drives (each: card login, replay through the agent, card out, upload)")
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=len(DRIVES) + 1)
            for i, drive in enumerate(DRIVES):
                drive_once(site, out, drive, cards[drive.person], anchors=anchors,
                           start=start + timedelta(hours=i))  # fmt: skip
            time.sleep(2.0)  # let the last fleet copies arrive
            care(site, out, cards, anchors, start + timedelta(hours=len(DRIVES) - 0.5))
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
        say("the fleet dashboard (msp-registry web): haulco's operator logs in")
        assert haulco.password_file is not None
        dashboard(site, "haulco", "rentacar", haulco.password_file)
    print(f"\nEverything is under {out}: logs, trip reports (drive-*.html, open them in a "
          "browser), outboxes, cloud/registry.db (any SQLite tool).")


if __name__ == "__main__":
    main()
