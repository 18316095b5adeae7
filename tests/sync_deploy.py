"""A whole deployment on loopback for tests: mosquitto on the configuration ``msp-registry
mosquitto-config`` writes, the registry as a child process, gateways with real outboxes."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloud_sync import cli as registry_cli
from cloud_sync.broker_process import MosquittoProcess
from cloud_sync.local import LocalDeployment
from cloud_sync.mosquitto import BrokerFiles
from cloud_sync.store.sqlite import SqliteStore
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.uplink import MqttUplink, UplinkConfig
from msp_protocol.chain import ChainReport, verify_chain
from msp_protocol.jws import load_public_key
from tests.sync_kit import CardIssuer, trip

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


class Deployment(LocalDeployment):
    """``LocalDeployment`` configured and enrolled through the ``msp-registry`` command line
    itself, with the inspection helpers the tests need."""

    def __init__(self, root: Path, anchors: CardIssuer) -> None:
        super().__init__(root, anchors.directory)

    @property
    def db(self) -> Path:
        return self.config.db

    def registry(self, *args: str) -> int:
        """Run ``msp-registry ARGS --db ... --ca-dir ...`` in-process; returns its exit code."""
        return registry_cli.main([*args, "--db", str(self.db), "--ca-dir", str(self.root / "ca")])

    def configure(self) -> BrokerFiles:
        code = self.registry(
            "mosquitto-config", str(self.brokerdir), "--port", str(self.device_port),
            "--bind", "127.0.0.1", "--registry-port", str(self.registry_port),
            "--fleet-port", str(self.fleet_port), "--run-as", getpass.getuser(),
        )  # fmt: skip
        assert code == 0
        d = self.brokerdir
        self.files = BrokerFiles(d / "mosquitto.conf", d / "acl", d / "registry.secret",
                                 d / "device-ca.pem")  # fmt: skip
        self.broker = MosquittoProcess(self.files.config, self.ports)
        return self.files

    def enroll_gateway(self, device: str, vin: str, fleet: str = "acme") -> GatewaySetup:
        gwdir = self.root / device
        key = init_device_key(gwdir / "device.key", device)
        cert = self.root / "devices" / f"{device}.pem"
        cert.parent.mkdir(exist_ok=True)
        code = self.registry("enroll", device, "--csr", str(key.csr_path), "--vin", vin,
                             "--fleet", fleet, "--out", str(cert))  # fmt: skip
        assert code == 0
        return GatewaySetup(device, vin, gwdir / "device.key", cert, gwdir / "outbox.db")

    def uplink_config(self, gw: GatewaySetup, **changes: object) -> UplinkConfig:
        base = {"device": gw.device, "port": self.device_port,
                "ca_file": self.brokerdir / "device-ca.pem", "cert_file": gw.cert,
                "key_file": gw.key, "resend_after_s": 2.0, "backoff_min_s": 1,
                "backoff_max_s": 2, "keepalive_s": 5}  # fmt: skip
        return UplinkConfig(**(base | changes))  # type: ignore[arg-type]

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
        assert self.registry("audit", "--device", gw.device) == 0
        return verify_chain([j for _, j in rows], lambda _kid: key)

    def stats(self) -> dict[str, dict[str, int]]:
        out = subprocess.run(
            [sys.executable, "-m", "cloud_sync.cli", "stats", "--json", "--db", str(self.db)],
            check=True, capture_output=True, env=os.environ,
        )  # fmt: skip
        value: dict[str, dict[str, int]] = json.loads(out.stdout)  # one object
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
