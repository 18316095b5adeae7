"""Test kit: a real NATS cluster (Debian's ``nats-server``) on free loopback ports, from the
configuration ``msp-registry nats-config`` writes, with JetStream ready before tests use it;
one node can be killed with SIGKILL and restarted."""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from cloud_sync import cli as registry_cli
from cloud_sync.broker_process import free_port
from cloud_sync.nats_config import NatsNode


def nats_server() -> str | None:
    """The ``nats-server`` binary, if installed."""
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")


def _get(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            value: dict[str, object] = json.loads(answer.read())
            return value
    except (OSError, ValueError):
        return None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different free loopback ports (``free_port`` may hand out a port it gave a
    moment ago: nats-config refuses a port taken twice)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class NatsCluster:
    """``size`` nodes configured in ``outdir`` for the registry at ``db`` (a path or a store
    URL; a PostgreSQL one needs its ``secrets_dir``) / ``ca_dir``."""

    def __init__(self, outdir: Path, db: Path | str, ca_dir: Path, size: int = 3,
                 secrets_dir: Path | None = None) -> None:  # fmt: skip
        self.outdir = outdir
        self.db = db
        self.ca_dir = ca_dir
        self.secrets_dir = secrets_dir
        ports = distinct_free_ports(4 * size)
        self.nodes = tuple(NatsNode(f"n{i + 1}", "127.0.0.1", *ports[4 * i:4 * i + 4])
                           for i in range(size))  # fmt: skip
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def registry(self, *args: str) -> int:
        """Run ``msp-registry ARGS --db ... --ca-dir ... [--secrets-dir ...]`` in-process."""
        secrets = ["--secrets-dir", str(self.secrets_dir)] if self.secrets_dir else []
        return registry_cli.main([*args, "--db", str(self.db), "--ca-dir", str(self.ca_dir),
                                  *secrets])  # fmt: skip

    def configure(self) -> None:
        """Write the configuration through the ``msp-registry nats-config`` command line."""
        specs = [f"--node=127.0.0.1:{n.client_port}:{n.cluster_port}:{n.mqtt_port}:"
                 f"{n.monitor_port}" for n in self.nodes]  # fmt: skip
        code = self.registry("nats-config", str(self.outdir), *specs, "--bind", "127.0.0.1",
                             "--run-as", getpass.getuser())  # fmt: skip
        assert code == 0

    @property
    def mqtt_ports(self) -> list[int]:
        return [n.mqtt_port for n in self.nodes]

    @property
    def client_urls(self) -> list[str]:
        return [n.client_url for n in self.nodes]

    @property
    def registry_password(self) -> str:
        return (self.outdir / "registry.secret").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.outdir / "device-ca.pem"

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def log(self, name: str) -> str:
        """What node ``name`` has logged so far."""
        path = self.outdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stream_messages(self, stream: str = "MSP_REC") -> int | None:
        """Messages ``stream`` holds now, from the first node's monitoring port that answers
        (``None``: no node knows the stream)."""
        for node in self.nodes:
            jsz = _get(f"http://127.0.0.1:{node.monitor_port}/jsz?streams=true")
            if jsz is None:
                continue
            accounts = jsz.get("account_details")
            for account in accounts if isinstance(accounts, list) else []:
                for detail in account.get("stream_detail", []):
                    if detail["name"] == stream:
                        return int(detail["state"]["messages"])
        return None

    def logs(self) -> str:
        return "".join(self.log(n.name) for n in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        """Start every node and wait until the cluster has a JetStream meta leader and every
        node is healthy and listens for MQTT."""
        binary = nats_server()
        assert binary is not None, "nats-server is not installed: run scripts/system-deps"
        for node in self.nodes:
            self._spawn(binary, node)
        self.wait_ready(timeout)

    def _spawn(self, binary: str, node: NatsNode) -> None:
        with (self.outdir / f"{node.name}.log").open("ab") as out:
            self._procs[node.name] = subprocess.Popen(
                [binary, "-c", str(self.outdir / f"{node.name}.conf")],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def healthy(self, node: NatsNode, strict: bool = True) -> bool:
        """The node knows the JetStream meta leader, listens for MQTT and, ``strict``, answers
        ``/healthz`` (every stream and consumer current)."""
        proc = self._procs.get(node.name)
        if proc is None or proc.poll() is not None:
            return False
        jsz = _get(f"http://127.0.0.1:{node.monitor_port}/jsz")
        meta = jsz.get("meta_cluster") if jsz else None
        leader = meta.get("leader") if isinstance(meta, dict) else None
        if not leader or not _listening(node.mqtt_port):
            return False
        if not strict:
            return True
        health = _get(f"http://127.0.0.1:{node.monitor_port}/healthz")
        return health is not None and health.get("status") == "ok"

    def wait_ready(self, timeout: float = 30.0, nodes: tuple[NatsNode, ...] | None = None,
                   strict: bool = True) -> None:  # fmt: skip
        deadline = time.monotonic() + timeout
        for node in nodes or self.nodes:
            while not self.healthy(node, strict):
                proc = self._procs.get(node.name)
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"nats-server {node.name} exited {proc.returncode}:"
                                         f"\n{self.log(node.name)[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"NATS node {node.name} not ready:"
                                         f"\n{self.log(node.name)[-3000:]}")
                time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL node ``name`` (nothing flushed, no goodbye to the others)."""
        proc = self._procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Start node ``name`` again on its configuration and store; wait until it knows the
        meta leader and listens for MQTT. Not for ``/healthz``: after a SIGKILL, nats-server
        2.9.10 sometimes reports one of the MQTT listener's own consumers "not current" for
        minutes (``Healthcheck failed: "JetStream consumer '$G > $MQTT_rmsgs > ...' is not
        current"``) while it serves MQTT and JetStream (the fault test drains through it)."""
        binary = nats_server()
        assert binary is not None
        node = self.node(name)
        self._spawn(binary, node)
        self.wait_ready(timeout, (node,), strict=False)

    def reload(self) -> None:
        for proc in self._procs.values():
            proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL)."""
        procs, self._procs = list(self._procs.values()), {}
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> NatsCluster:
        self.configure()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
