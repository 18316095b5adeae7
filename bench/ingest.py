"""Registry ingest benchmark: records/s verified and committed by one registry worker through a
real mosquitto, against bare Ed25519 verification of the same records in the same run (the
physical limit of one core), and ack latency p50/p99 at a fixed offered rate.

    .venv/bin/python bench/ingest.py [--records 5000] [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import getpass
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.broker_process import MosquittoProcess, free_port
from cloud_sync.mosquitto import BrokerLayout, write_config
from cloud_sync.pki import DeviceCa, cert_pem, key_pem, write_private
from cloud_sync.registry import enroll_device
from cloud_sync.store.sqlite import SqliteStore
from msp_protocol import bodies
from msp_protocol.jws import Signer, record_hash, split
from msp_protocol.records import Record, format_ts, parse_ts
from msp_protocol.topics import ack_topic, parse_ack, rec_topic

T0 = 1_795_000_000.0
VIN = "JTBENCH0001"


def make_chain(signer: Signer, count: int) -> list[str]:
    """``count`` chained trip records of one device, all in the past (a future-dated record
    would be quarantined, not stored)."""
    tokens, prev = [], None
    base = min(T0, time.time() - 86400 - count * 1000)
    for seq in range(1, count + 1):
        start = base + seq * 1000
        body = bodies.Trip(format_ts(start), format_ts(start + 900), 12.5, None, 900.0, 82.0,
                           0.9, 2.1, 30.0, 0.1, {"harsh_braking": 1}, 5.0, 60.0)  # fmt: skip
        rec = Record("trip", signer.kid, VIN, seq, prev, format_ts(start + 900), None, body)
        token = signer.sign_record(rec)
        tokens.append(token)
        prev = record_hash(token)
    return tokens


def bare_verify_rate(key: ed25519.Ed25519PublicKey, tokens: list[str]) -> float:
    """Ed25519 verifications per second of the records' signatures, nothing else."""
    parts = [split(t) for t in tokens]
    began = time.perf_counter()
    for p in parts:
        key.verify(p.signature, p.signing_input)
    return len(parts) / (time.perf_counter() - began)


class Gateway:
    """A raw MQTT gateway client (mTLS) that records when acks arrive."""

    def __init__(self, port: int, ca: Path, cert: Path, key: Path) -> None:
        self.acks: list[tuple[float, int]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-bench",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as edge_agent.uplink does
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(ack_topic("gw-bench"), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.acks.append((time.perf_counter(), parse_ack(bytes(msg.payload))))

    def publish(self, token: str) -> mqtt.MQTTMessageInfo:
        return self.client.publish(rec_topic("gw-bench"), token.encode(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def commit_span(db: Path) -> float:
    """Seconds between the first and the last commit of the registry (its own clock)."""
    store = SqliteStore(db)
    try:
        first, last = store._conn.execute(  # the bench reads the registry's own timestamps
            "SELECT min(received_at), max(received_at) FROM records"
        ).fetchone()
    finally:
        store.close()
    return (parse_ts(last) - parse_ts(first)).total_seconds()


def head(db: Path) -> int:
    store = SqliteStore(db)
    try:
        return store.chain_head("gw-bench").seq
    finally:
        store.close()


def wait_head(db: Path, seq: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while head(db) < seq:
        if time.monotonic() > deadline:
            raise SystemExit(f"registry stuck at {head(db)} of {seq}")
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000, help="records for the throughput run")
    ap.add_argument("--rate", type=float, default=200.0, help="offered rate for ack latency")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="msp-bench-"))
    ca = DeviceCa.open(root / "ca")
    dport, rport = free_port(), free_port()
    files = write_config(root / "broker", ca, BrokerLayout(
        device_port=dport, device_bind="127.0.0.1", registry_port=rport,
        fleet_port=free_port(), run_as=getpass.getuser(),
        max_queued_messages=args.records + 1000))  # fmt: skip
    key = ed25519.Ed25519PrivateKey.generate()
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-bench")])).sign(key, None)
    store = SqliteStore(root / "registry.db")
    cert = enroll_device(store, ca, "gw-bench", csr.public_bytes(serialization.Encoding.PEM),
                         vin=VIN, fleet="bench")  # fmt: skip
    store.close()
    (root / "gw.pem").write_bytes(cert_pem(cert))
    write_private(root / "gw.key", key_pem(key))
    (root / "anchors").mkdir()
    (root / "anchors" / "ca.pem").write_bytes(cert_pem(ca.cert))  # no cards in this run
    total = args.records + int(args.rate * args.seconds)
    print(f"signing {total} records ...", file=sys.stderr)
    tokens = make_chain(Signer(key, "gw-bench"), total)
    bare = bare_verify_rate(key.public_key(), tokens[: args.records])

    registry_cmd = [sys.executable, "-m", "cloud_sync.cli", "serve",
                    "--broker", f"mqtt://127.0.0.1:{rport}", "--password-file",
                    str(files.registry_secret), "--anchors", str(root / "anchors"),
                    "--db", str(root / "registry.db")]  # fmt: skip
    with MosquittoProcess(files.config, (dport, rport)):
        # 1. throughput: the broker holds a backlog; one registry worker drains it
        reg = subprocess.Popen(registry_cmd)
        time.sleep(1.5)  # let it subscribe (persistent session), then stop it
        reg.terminate()
        reg.wait()
        gw = Gateway(dport, files.ca_cert, root / "gw.pem", root / "gw.key")
        infos = [gw.publish(t) for t in tokens[: args.records]]
        for info in infos:
            info.wait_for_publish(60)
        began = time.perf_counter()
        reg = subprocess.Popen(registry_cmd)
        wait_head(root / "registry.db", args.records)
        drained = time.perf_counter() - began  # includes the worker's start-up
        span = commit_span(root / "registry.db")
        # 2. ack latency at a fixed offered rate, registry running
        sent: list[float] = []
        period = 1.0 / args.rate
        began = time.perf_counter()
        for i, token in enumerate(tokens[args.records:]):
            delay = began + i * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.perf_counter())
            gw.publish(token)
        wait_head(root / "registry.db", total)
        time.sleep(0.5)
        gw.close()
        reg.terminate()
        reg.wait()
    latencies = []
    acks = sorted(gw.acks)
    j = 0
    for i, at in enumerate(sent):
        seq = args.records + i + 1
        while j < len(acks) and acks[j][1] < seq:
            j += 1
        if j < len(acks):
            latencies.append((acks[j][0] - at) * 1000)
    rate = args.records / drained
    steady = (args.records - 1) / span
    q = statistics.quantiles(latencies, n=100)
    print(f"bare Ed25519 verify, one core:        {bare:10.0f} records/s (baseline)")
    print(f"registry worker via mosquitto:        {steady:10.0f} records/s "
          f"= {steady / bare:.3f} x baseline (first to last commit of {args.records})")
    print(f"  the same, with the worker's start-up: {rate:10.0f} records/s")
    print(f"ack latency at {args.rate:.0f} records/s offered:  p50 {q[49]:.1f} ms,"
          f" p99 {q[98]:.1f} ms ({len(latencies)} records)")  # fmt: skip
    print(f"(work files in {root})", file=sys.stderr)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
