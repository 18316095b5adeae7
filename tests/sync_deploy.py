"""A whole deployment on loopback for tests: mosquitto on the configuration ``msp-registry
mosquitto-config`` writes, the registry as a child process, gateways with real outboxes."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sync_kit import CardIssuer, trip

from cloud_sync import cli as registry_cli
from cloud_sync.broker_process import MosquittoProcess, free_port
from cloud_sync.sqlite_store import SqliteStore
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.uplink import MqttUplink, UplinkConfig
from msp_protocol.chain import ChainReport, verify_chain
from msp_protocol.jws import load_public_key

T0 = 1_795_000_000.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` (never a timing
    assertion: the timeout only bounds a hung test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class GatewaySetup:
    """An enrolled gateway's files: key, certificate, outbox."""

    device: str
    vin: str
    key: Path
    cert: Path
    outbox_path: Path

    def open_outbox(self) -> Outbox:
        return Outbox.open(self.outbox_path, load_signer(self.key, self.device), self.vin)

    def fill(self, outbox: Outbox, count: int, start: int = 0) -> None:
        outbox.append_many([NewRecord(trip(10.0 + i % 7, float(i % 3)), T0 + i * 1000.0)
                            for i in range(start, start + count)])  # fmt: skip


@dataclass
class Deployment:
    """Broker + registry + enrolled gateways under one temporary directory."""

    root: Path
    anchors: CardIssuer
    device_port: int = field(default_factory=free_port)
    registry_port: int = field(default_factory=free_port)
    broker: MosquittoProcess | None = None
    registry_proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.root / "registry.db"

    @property
    def brokerdir(self) -> Path:
        return self.root / "broker"

    def registry(self, *args: str) -> int:
        """Run ``msp-registry ARGS --db ... --ca-dir ...`` in-process; returns its exit code."""
        return registry_cli.main([*args, "--db", str(self.db), "--ca-dir", str(self.root / "ca")])

    def configure(self) -> None:
        code = self.registry(
            "mosquitto-config", str(self.brokerdir), "--port", str(self.device_port),
            "--bind", "127.0.0.1", "--registry-port", str(self.registry_port),
            "--run-as", getpass.getuser(),
        )  # fmt: skip
        assert code == 0
        self.broker = MosquittoProcess(
            self.brokerdir / "mosquitto.conf", (self.device_port, self.registry_port)
        )

    def enroll(self, device: str, vin: str, fleet: str = "acme") -> GatewaySetup:
        gwdir = self.root / device
        key = init_device_key(gwdir / "device.key", device)
        cert = gwdir / "device.pem"
        code = self.registry("enroll", device, "--csr", str(key.csr_path), "--vin", vin,
                             "--fleet", fleet, "--out", str(cert))  # fmt: skip
        assert code == 0
        return GatewaySetup(device, vin, gwdir / "device.key", cert, gwdir / "outbox.db")

    def start_registry(self, *extra: str) -> None:
        log = (self.root / "registry.log").open("ab")
        self.registry_proc = subprocess.Popen(
            [sys.executable, "-m", "cloud_sync.cli", "-v", "serve",
             "--broker", f"mqtt://127.0.0.1:{self.registry_port}",
             "--password-file", str(self.brokerdir / "registry.secret"),
             "--anchors", str(self.anchors.directory), "--db", str(self.db), *extra],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill_registry(self) -> None:
        if self.registry_proc is not None:
            self.registry_proc.send_signal(signal.SIGKILL)
            self.registry_proc.wait()
            self.registry_proc = None

    def stop(self) -> None:
        if self.registry_proc is not None:
            self.registry_proc.terminate()
            try:
                self.registry_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill_registry()
        if self.broker is not None:
            self.broker.stop()

    def uplink_config(self, gw: GatewaySetup, **changes: object) -> UplinkConfig:
        base = {"device": gw.device, "port": self.device_port,
                "ca_file": self.brokerdir / "device-ca.pem", "cert_file": gw.cert,
                "key_file": gw.key, "resend_after_s": 2.0, "backoff_min_s": 1,
                "backoff_max_s": 2, "keepalive_s": 5}  # fmt: skip
        return UplinkConfig(**(base | changes))  # type: ignore[arg-type]

    def gateway_cmd(self, gw: GatewaySetup, *extra: str) -> list[str]:
        agent = str(Path(sys.executable).with_name("msp-agent"))
        return [agent, "uplink", "--outbox", str(gw.outbox_path),
                "--key", str(gw.key), "--device", gw.device, "--vin", gw.vin,
                "--broker", f"mqtts://127.0.0.1:{self.device_port}",
                "--ca", str(self.brokerdir / "device-ca.pem"), "--cert", str(gw.cert),
                "--resend-after", "2", *extra]  # fmt: skip

    def stored(self, device: str) -> list[tuple[int, str]]:
        store = SqliteStore(self.db)
        try:
            rows = store._conn.execute(  # read-only look at the chain the registry kept
                "SELECT seq, jws FROM records WHERE device = ? ORDER BY seq", (device,)
            ).fetchall()
        finally:
            store.close()
        return [(int(s), str(j)) for s, j in rows]

    def verify(self, gw: GatewaySetup, count: int) -> ChainReport:
        """Every one of ``count`` records is in the registry exactly once and chains."""
        rows = self.stored(gw.device)
        assert [s for s, _ in rows] == list(range(1, count + 1))
        key = load_public_key(load_signer(gw.key, gw.device).public_pem().encode())
        return verify_chain([j for _, j in rows], lambda _kid: key)

    def stats(self) -> dict[str, dict[str, int]]:
        out = subprocess.run(
            [sys.executable, "-m", "cloud_sync.cli", "stats", "--json", "--db", str(self.db)],
            check=True, capture_output=True, env=os.environ,
        )  # fmt: skip
        value: dict[str, dict[str, int]] = json.loads(out.stdout)[0]
        return value


class UplinkThread:
    """An in-process gateway: ``MqttUplink.run`` on its own thread."""

    def __init__(self, uplink: MqttUplink) -> None:
        self.uplink = uplink
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=uplink.run, args=(self.stop_event,), daemon=True)

    def __enter__(self) -> MqttUplink:
        self.thread.start()
        return self.uplink

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
