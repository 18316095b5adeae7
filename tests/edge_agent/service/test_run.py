"""``msp-agent run`` end to end: a simulated drive on a python-can virtual bus, the virtual
card through a private pcscd, a PIN from the HMI socket, and a real mosquitto + registry.
SIGTERM mid-trip ends the trip and the session cleanly; SIGKILL loses no appended record;
the watchdog is pinged on a NOTIFY_SOCKET the test listens on."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cloud_sync.broker_process import MosquittoProcess
from edge_agent.card.image import CardImage, make_test_card
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.licence import LicenceData
from edge_agent.card.pcscd import PrivatePcscd
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard
from edge_agent.simulate import simulate
from tests.sync_deploy import Deployment, GatewaySetup, wait_for

REPO = Path(__file__).parent.parent.parent.parent
PIN = "1234"
VIN = "JTDKB20U093456789"


def payload(jws: str) -> dict[str, object]:
    part = jws.split(".")[1]
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, TestIssuer]]:
    """mosquitto on the generated configuration and the registry, trusting the card CA."""
    if not MosquittoProcess.available():
        pytest.fail("mosquitto is not installed: run scripts/test (it installs it)")
    root = tmp_path_factory.mktemp("site")
    issuer = TestIssuer.create()
    anchors = root / "anchors"
    anchors.mkdir()
    (anchors / "jpki.pem").write_bytes(issuer.certificate.public_bytes(serialization.Encoding.PEM))
    deploy = Deployment(root, types.SimpleNamespace(directory=anchors))  # type: ignore[arg-type]
    deploy.configure()
    deploy.start()
    try:
        yield deploy, issuer
    finally:
        deploy.stop()


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated city drive of about 90 s (ignition on to ignition off), no background."""
    path = tmp_path_factory.mktemp("drive") / "drive.log"
    simulate(path, scenario="mixed", seed=3, duration=120, background=False)
    return path


class Harness:
    """One ``msp-agent run`` under the harness, and what the test watches it through: its
    output, and every line it sends to its NOTIFY_SOCKET (read as systemd would, at once)."""

    def __init__(self, proc: subprocess.Popen[bytes], notify: socket.socket, marker: Path,
                 log: Path) -> None:  # fmt: skip
        self.proc, self.notify, self.marker, self.log = proc, notify, marker, log
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self.notify.settimeout(0.2)
        while True:
            try:
                self.lines.extend(self.notify.recv(4096).decode().split("\n"))
            except TimeoutError:
                if self.proc.poll() is not None:
                    return
            except OSError:
                return

    def notifications(self) -> list[str]:
        """Every line received so far (after the agent exits: every line it sent)."""
        if self.proc.poll() is not None:
            self._reader.join(timeout=5)
        return list(self.lines)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def write_config(tmp: Path, site: Deployment, gw: GatewaySetup, channel: str, *,
                 card: bool, anchors: Path | None = None, extra: str = "") -> Path:  # fmt: skip
    card_table = "[card]\nenabled = false\n"
    if card:
        card_table = (
            f'[card]\nanchors = ["{anchors}"]\npin_socket = "{tmp / "pin.sock"}"\n'
            "poll_s = 0.1\npin_timeout_s = 20\n\n[card.consent]\nrecipient = \"acme\"\n"
            'categories = ["driving", "score"]\ndays = 30\n'
        )
    path = tmp / "agent.toml"
    path.write_text(f"""
device = "{gw.device}"
key = "{gw.key}"
vin = "{gw.vin}"

[[bus]]
name = "can0"
interface = "virtual"
channel = "{channel}"
signal_map = "{REPO / "dbc" / "msp_demo.toml"}"

{card_table}
[outbox]
path = "{gw.outbox_path}"

[uplink]
broker = "mqtts://127.0.0.1:{site.device_port}"
ca = "{site.brokerdir / "device-ca.pem"}"
cert = "{gw.cert}"

[agent]
health_interval_s = 2
health_max_interval_s = 2
no_frames_s = 600
stop_flush_s = 15
# a shared test machine may fall behind the feeder: no frame may be dropped in these tests
queue_size = 1000000
{extra}
""")
    return path


def start(tmp: Path, config: Path, drive: Path, channel: str, hold_at: float,
          name: str = "agent") -> Harness:  # fmt: skip
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / f"{name}.notify"))
    marker = tmp / f"{name}.sent"
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp / f"{name}.notify"), WATCHDOG_USEC="1000000")
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.edge_agent.service.harness", str(drive), channel,
             "10", str(hold_at), str(marker), "--", "-v", "run", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    return Harness(proc, notify, marker, log)


def answer_pin(path: Path, stop: threading.Event) -> None:
    """The in-vehicle HMI: accepts the consent request and answers every PIN request on the
    agent's socket."""
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(2)
                conn.connect(str(path))
                request = json.loads(conn.makefile().readline())
                if request["type"] == "consent_request":  # the driver accepts all of it
                    accept = [c["id"] for c in request["categories"]]
                    conn.sendall(json.dumps({"accept": accept}).encode() + b"\n")
                    continue
                assert request["type"] == "pin_request"
                conn.sendall(json.dumps({"pin": PIN}).encode() + b"\n")
        except (OSError, ValueError):
            time.sleep(0.05)


def wait(harness: Harness, condition: Callable[[], bool], what: str, timeout: float) -> None:
    """wait_for, with the agent's output in the failure."""
    try:
        wait_for(condition, what, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- agent output ---\n{harness.output()}") from None


def registry_kinds(site: Deployment, device: str) -> list[str]:
    return [str(payload(jws)["kind"]) for _, jws in site.stored(device)]


@pytest.fixture
def card_run(site, drive, tmp_path):
    """Start an agent with the virtual card inserted and the HMI answering the PIN; yields a
    function that starts the harness holding the bus at ``hold_at`` seconds into the drive."""
    deploy, issuer = site
    anchors = tmp_path / "jpki.pem"
    anchors.write_bytes(issuer.certificate.public_bytes(serialization.Encoding.PEM))
    licence = LicenceData(date(2030, 1, 31), ("普通",))
    image: CardImage = make_test_card(issuer, pin=PIN, licence=licence)
    hmi_stop = threading.Event()
    hmi = threading.Thread(target=answer_pin, args=(tmp_path / "pin.sock", hmi_stop), daemon=True)
    started: list[Harness] = []
    with PrivatePcscd(tmp_path / "pcscd") as pcscd:
        vpcd = VpcdCard(VirtualCard(image), port=pcscd.port)

        def run(device: str, hold_at: float) -> tuple[Harness, GatewaySetup]:
            gw = deploy.enroll_gateway(device, VIN)
            config = write_config(tmp_path, deploy, gw, device, card=True, anchors=anchors)
            harness = start(tmp_path, config, drive, device, hold_at=hold_at)
            started.append(harness)
            hmi.start()
            vpcd.insert()
            return harness, gw

        try:
            yield run
        finally:
            hmi_stop.set()
            for harness in started:
                if harness.proc.poll() is None:
                    harness.proc.kill()
            vpcd.remove()


def test_run_drive_card_sigterm_mid_trip(site, card_run) -> None:
    deploy, _ = site
    harness, gw = card_run("gw-run1", 50)
    wait_for(harness.marker.exists, "the feeder to send 50 s of the drive", 60)
    wait(harness, lambda: "session.start" in registry_kinds(deploy, gw.device),
         "session.start in the registry", 60)
    wait_for(lambda: any(n == "WATCHDOG=1" for n in harness.notifications()),
             "a watchdog ping", 10)  # fmt: skip
    assert harness.proc.poll() is None, harness.output()
    harness.proc.send_signal(signal.SIGHUP)  # systemctl reload: the same file, re-read
    wait(harness, lambda: "configuration reloaded" in harness.output(), "the reload", 30)
    harness.proc.send_signal(signal.SIGTERM)
    assert harness.proc.wait(timeout=60) == 0, harness.output()
    notes = harness.notifications()
    assert "READY=1" in notes and "RELOADING=1" in notes and "STOPPING=1" in notes
    assert notes.index("READY=1") < notes.index("WATCHDOG=1") < notes.index("STOPPING=1")
    rows = deploy.stored(gw.device)
    records = [payload(jws) for _, jws in rows]
    deploy.verify(gw, len(rows))  # seq 1..N, each once, chained, audited
    kinds = [str(r["kind"]) for r in records]
    assert kinds.count("session.start") == 1 and kinds.count("session.end") == 1
    assert kinds.count("trip") == 1 and "health" in kinds
    start_rec = next(r for r in records if r["kind"] == "session.start")
    end_rec = next(r for r in records if r["kind"] == "session.end")
    trip = next(r for r in records if r["kind"] == "trip")
    session = start_rec["session"]
    assert end_rec["session"] == session and trip["session"] == session
    [consent] = start_rec["body"]["statement"]["consents"]  # type: ignore[index]
    assert consent["recipient"] == "acme" and consent["categories"] == ["driving", "score"]
    end_body = end_rec["body"]
    assert isinstance(end_body, dict) and end_body["reason"] == "agent_stop"
    assert end_body["totals"]["trips"] == 1
    body = trip["body"]
    assert isinstance(body, dict)
    # SIGTERM came while the car was moving, 50 s into the drive: the trip ends where the data did.
    assert 10 < body["duration_s"] <= 51 and body["distance_km"] > 0
    [stored] = [s for s in deploy_sessions(deploy) if s[0] == session]
    assert stored[1] == "agent_stop"
    health = [r["body"]["errors"] for r in records if r["kind"] == "health"]  # type: ignore[index]
    assert health[-1]["uplink.connected"] == 1 and health[-1]["card.reader"] == 1
    assert any(h.get("uplink.acked_seq", 0) > 0 and "uplink.last_ack_age_s" in h for h in health)


def test_ignition_off_ends_trip_and_session_and_the_agent_keeps_running(site, card_run) -> None:
    deploy, _ = site
    harness, gw = card_run("gw-run2", 0)  # the whole drive, to ignition off
    wait(harness, lambda: "session.end" in registry_kinds(deploy, gw.device),
         "session.end in the registry", 60)
    assert harness.proc.poll() is None, harness.output()
    harness.proc.send_signal(signal.SIGTERM)
    assert harness.proc.wait(timeout=60) == 0, harness.output()
    records = [payload(jws) for _, jws in deploy.stored(gw.device)]
    kinds = [str(r["kind"]) for r in records]
    assert kinds.count("trip") == 1 and kinds.count("session.end") == 1
    end_rec = next(r for r in records if r["kind"] == "session.end")
    trip = next(r for r in records if r["kind"] == "trip")
    assert end_rec["body"]["reason"] == "ignition_off"  # type: ignore[index]
    assert end_rec["body"]["totals"]["trips"] == 1  # type: ignore[index]
    assert end_rec["body"]["totals"]["distance_km"] == trip["body"]["distance_km"]  # type: ignore[index]
    assert trip["session"] == end_rec["session"]
    # every event the trip counts arrived as its own record, in the session
    events = [r for r in records if r["kind"] == "event"]
    assert len(events) == sum(trip["body"]["events"].values()) >= 1  # type: ignore[index]
    assert {e["session"] for e in events} == {end_rec["session"]}


def deploy_sessions(deploy: Deployment) -> list[tuple[str, str | None]]:
    with sqlite3.connect(deploy.db) as conn:
        return [(str(i), r) for i, r in conn.execute("SELECT id, end_reason FROM sessions")]


def outbox_rows(path: Path) -> list[tuple[int, str]]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return [(int(s), str(j)) for s, j in conn.execute("SELECT seq, jws FROM records")]
    except sqlite3.OperationalError:  # the agent is still creating the file
        return []


def test_sigkill_loses_no_appended_record(
    site: tuple[Deployment, TestIssuer], drive: Path, tmp_path: Path
) -> None:
    deploy, _ = site
    gw = deploy.enroll_gateway("gw-kill", VIN)
    # First life: a broker nobody listens on, so everything stays in the outbox; then kill -9.
    config = write_config(tmp_path, deploy, gw, "kill1", card=False)
    config.write_text(config.read_text().replace(
        f"mqtts://127.0.0.1:{deploy.device_port}", "mqtt://127.0.0.1:9"
    ).replace("health_interval_s = 2", "health_interval_s = 0.2"))  # fmt: skip
    harness = start(tmp_path, config, drive, "kill1", hold_at=0, name="first")
    try:
        wait(harness, lambda: len(outbox_rows(gw.outbox_path)) >= 8, "8 records in the outbox",
             60)
        harness.proc.send_signal(signal.SIGKILL)
        harness.proc.wait(timeout=10)
    finally:
        if harness.proc.poll() is None:
            harness.proc.kill()
    before = outbox_rows(gw.outbox_path)
    assert len(before) >= 8
    # Second life: the real broker; no frames at all. Every record of the first life arrives.
    config = write_config(tmp_path, deploy, gw, "kill2", card=False)
    second = start(tmp_path, config, drive, "kill2", hold_at=0.001, name="second")
    try:
        last = before[-1][0]
        wait(second, lambda: len(deploy.stored(gw.device)) >= last,
             f"seqs up to {last} in the registry", 60)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=60) == 0, second.output()
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    stored = dict(deploy.stored(gw.device))
    for seq, jws in before:
        assert stored[seq] == jws, f"seq {seq} differs or is missing"
    deploy.verify(gw, len(stored))
