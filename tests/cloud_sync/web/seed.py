"""A registry seeded through the real ingest path for the dashboard's tests and screenshots:
two fleets, three gateways, two drivers with card-signed consents, trips, events, a trouble
code, health records and one rejection."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
from cryptography.hazmat.primitives import serialization

from cloud_sync.broker_process import free_port
from cloud_sync.cards import person_id
from cloud_sync.ingest import Ingestor
from cloud_sync.mosquitto import password_hash
from cloud_sync.pki import DeviceCa
from cloud_sync.public import PublicConfig
from cloud_sync.public.release import release
from cloud_sync.republish import Republisher, fleet_pseudonym
from cloud_sync.store import Fleet, Store
from msp_protocol import bodies
from msp_protocol.jws import b64url
from msp_protocol.records import format_ts
from msp_protocol.topics import rec_topic
from tests.sync_kit import T0, Card, CardIssuer, Gateway, trip

UNTIL = "2027-11-26T00:00:00.000Z"
PASSWORDS = {"acme": "acme-secret-password", "globex": "globex-secret-password"}


@dataclass
class Seeded:
    """What :func:`seed` made: the cards' persons as each fleet knows them."""

    alice: dict[str, str]  # fleet -> pseudonym
    bob: dict[str, str]
    gateways: dict[str, Gateway]


def _event(kind: str, at: float, severity: str = "minor") -> bodies.Event:
    return bodies.Event(kind, format_ts(at), 0.8, -4.1 if "brak" in kind else 3.2, 42.0,
                        severity, bodies.Location(35.68, 139.76))  # fmt: skip


def _health(queue: int, fps: float, errors: dict[str, int]) -> bodies.Health:
    return bodies.Health(3600.0, queue, queue * 900, fps, errors, 0, 0)


def seed(store: Store, ca: DeviceCa, issuer: CardIssuer) -> Seeded:
    """Fill ``store``: fleets acme (password) and globex, their gateways, drivers, records."""
    for fleet, password in PASSWORDS.items():
        store.add_fleet(Fleet(fleet, "2026-11-01T00:00:00Z", password_hash(password)))
    gws = {"gw-1": Gateway("gw-1", "JTACME00001"), "gw-2": Gateway("gw-2", "JTACME00002"),
           "gw-3": Gateway("gw-3", "JTGLOBEX001")}  # fmt: skip
    for gw in gws.values():
        store.enroll(gw.device_row(ca, "globex" if gw.device == "gw-3" else "acme"))
    alice, bob = issuer.card(), issuer.card()
    ingestor = Ingestor(store, issuer.anchors(), fanout=Republisher(store).fanout)
    tokens: dict[str, list[str]] = {d: [] for d in gws}

    def session(gw: Gateway, card: Card, sid: str, consents: tuple[bodies.Consent, ...]) -> None:
        start = card.session_start(gw, sid, consents=consents)
        tokens[gw.device].append(gw.sign(start, "session.start", sid))

    full = ("driving", "maintenance", "score", "location")
    # alice drives gw-1 (acme, everything) and gw-3 (globex, driving and score)
    session(gws["gw-1"], alice, "s-a1", (bodies.Consent("acme", full, UNTIL),))
    for day, (km, points) in enumerate([(24.0, 2.0), (31.0, 6.0), (18.5, 0.0), (42.0, 3.0)]):
        tokens["gw-1"].append(gws["gw-1"].sign(trip(km, points, day), "trip", "s-a1"))
    braking = _event("harsh_braking", T0 + 300, "major")
    tokens["gw-1"].append(gws["gw-1"].sign(braking, "event", "s-a1"))
    tokens["gw-1"].append(gws["gw-1"].sign(bodies.Dtc(
        (bodies.TroubleCode("P0301", "stored"), bodies.TroubleCode("P0420", "pending")),
        True, 48211.0), "dtc", "s-a1"))  # fmt: skip
    session(gws["gw-3"], alice, "s-a3", (bodies.Consent("globex", ("driving", "score"), UNTIL),))
    tokens["gw-3"].append(gws["gw-3"].sign(trip(55.0, 1.0, 5), "trip", "s-a3"))
    # bob drives gw-2 (acme, driving and score, no location): his events come without position
    session(gws["gw-2"], bob, "s-b2", (bodies.Consent("acme", ("driving", "score"), UNTIL),))
    for day, (km, points) in enumerate([(15.0, 9.0), (27.0, 12.0), (33.0, 4.0)]):
        tokens["gw-2"].append(gws["gw-2"].sign(trip(km, points, day + 1), "trip", "s-b2"))
    tokens["gw-2"].append(gws["gw-2"].sign(_event("harsh_acceleration", T0 + 900), "event", "s-b2"))
    tokens["gw-2"].append(gws["gw-2"].sign(_event("speeding", T0 + 1200, "major"), "event", "s-b2"))
    for device, (queue, fps, errors) in {"gw-1": (3, 412.0, {}),
                                         "gw-2": (57, 388.5, {"can_bus_off": 1}),
                                         "gw-3": (0, 401.0, {})}.items():  # fmt: skip
        tokens[device].append(gws[device].sign(_health(queue, fps, errors), "health"))
    for device, items in tokens.items():
        ingestor.process([(rec_topic(device), t.encode()) for t in items])
    ingestor.process([(rec_topic("gw-9"), b"not a record")])  # one counted rejection
    seed_public(store, ca, issuer)
    secret = store.pseudonym_secret()
    ids = [person_of_card(card) for card in (alice, bob)]
    assert {p.id for p in store.persons()} == set(ids)
    return Seeded({f: fleet_pseudonym(secret, f, ids[0]) for f in PASSWORDS},
                  {f: fleet_pseudonym(secret, f, ids[1]) for f in PASSWORDS}, gws)


CENTRE = h3.latlng_to_cell(35.68, 139.76, 7)  # Tokyo


def seed_public(store: Store, ca: DeviceCa, issuer: CardIssuer, hours: int = 2) -> int:
    """Ten gateways of the public-transport fleet ``initech`` contribute to 37 cells around
    Tokyo for ``hours`` hours; released with k = 5 and real OpenDP noise. Returns the count of
    published (cell, hour)s."""
    ingestor = Ingestor(store, issuer.anchors())
    cells = sorted(h3.grid_disk(CENTRE, 3))
    gws = [Gateway(f"gw-bus-{i}", f"JTBUS0000{i}") for i in range(10)]
    for gw in gws:
        store.enroll(gw.device_row(ca, "initech"))
    start = datetime(2026, 11, 18, 8, tzinfo=UTC)
    for h in range(hours):
        hour = (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00:00Z")
        for n, gw in enumerate(gws):
            stats = []
            for i, cell in enumerate(cells):
                speed = 12.0 + (i * 7 + h * 11 + n) % 45  # slow in the middle, faster outside
                km = 4.0 + (i % 5)
                seconds = km / speed * 3600
                fuel = km * (0.05 + 0.02 * ((i + h) % 4))
                stats.append(bodies.CellStats(cell, km, seconds, km / seconds * 3600, fuel,
                                              fuel * 2.32))  # fmt: skip
            token = gw.sign(bodies.Stats(hour, tuple(stats)), "stats")
            ingestor.process([(rec_topic(gw.device), token.encode())])
    counts = release(store, PublicConfig(k=5), start + timedelta(hours=hours + 3))
    return counts.released


def person_of_card(card: Card) -> str:
    """The registry's internal id of a card's person (``cloud_sync.cards``)."""
    spki = card.cert.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return person_id(b64url(hashlib.sha256(spki).digest()))


@dataclass
class WebServer:
    """``msp-registry web`` as a child process on a free loopback port."""

    db: Path | str
    extra: tuple[str, ...] = ()
    port: int = dataclasses.field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> WebServer:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cloud_sync.cli", "-v", "web", "--db", str(self.db),
                 "--bind", f"127.0.0.1:{self.port}", *self.extra],
                stdout=out, stderr=subprocess.STDOUT, env=os.environ,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"msp-registry web exited {self.proc.returncode}: "
                                     f"{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("msp-registry web did not answer")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
