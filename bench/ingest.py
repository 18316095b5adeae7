"""Registry ingest benchmark: records/s verified and committed per registry worker through a
real broker, against bare Ed25519 verification of the same records in the same run (the
physical limit of one core), the total with several workers, and ack latency p50/p99 at fixed
offered rates.

    .venv/bin/python bench/ingest.py [--store sqlite|postgresql] [--broker mosquitto|nats]
        [--workers 2] [--records 6000] [--devices 8] [--batch-records 1] [--rates 200,1000]
        [--seconds 8] [--verify-workers 0]

Throughput is a backlog drain: the broker holds ``--records`` records of ``--devices``
gateways (``--batch-records`` a message: 1, or up to 32 as a gateway that is behind sends
them), then the workers drain it; the rate is records / (last commit - start of the drain),
the last commit time being the one the registry itself stored. On mosquitto the workers are
connected and subscribed, then frozen with SIGSTOP while the backlog is published, then
thawed (the start); on NATS (``--broker nats``: a three-node cluster with JetStream from
``msp-registry nats-config``, run by ``tests/nats_cluster.py``; gateways on its MQTT
listeners with MQTT 3.1.1, workers ``serve --nats-dir``) the records stream holds the backlog
with no worker running and the workers start once it holds every message (the start: the
first worker's log line saying it is bound to the durable consumer). Run 1 is one worker (the
ratio to bare verification is its rate over the bare rate); run 2 is ``--workers`` workers
on a shared subscription (``$share/registry/...``) or the one JetStream consumer, on a fresh
database and broker, draining the same records. Latency: one worker running, records offered
at each fixed rate, round robin over the gateways; an ack's latency is from a record's
publish to the first ack covering it. ``--store postgresql`` runs a throw-away PostgreSQL
server (``tests/pg_server.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync.broker_process import MosquittoProcess, free_port
from cloud_sync.mosquitto import BrokerFiles, BrokerLayout, write_config
from cloud_sync.pki import DeviceCa, cert_pem, key_pem, write_private
from cloud_sync.registry import enroll_device
from cloud_sync.store.open import open_store
from msp_protocol import bodies
from msp_protocol.jws import Signer, record_hash, split
from msp_protocol.records import Record, format_ts, parse_ts
from msp_protocol.topics import ack_topic, parse_ack, rec_topic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.nats_cluster import NatsCluster, nats_server
from tests.pg_server import PgServer

T0 = 1_795_000_000.0


def make_chain(signer: Signer, vin: str, count: int) -> list[str]:
    """``count`` chained trip records of one device, all in the past (a future-dated record
    would be quarantined, not stored)."""
    tokens, prev = [], None
    base = min(T0, time.time() - 86400 - count * 1000)
    for seq in range(1, count + 1):
        start = base + seq * 1000
        body = bodies.Trip(format_ts(start), format_ts(start + 900), 12.5, None, 900.0, 82.0,
                           0.9, 2.1, 30.0, 0.1, {"harsh_braking": 1}, 5.0, 60.0)  # fmt: skip
        rec = Record("trip", signer.kid, vin, seq, prev, format_ts(start + 900), None, body)
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


@dataclass
class Device:
    """One bench gateway: its key, files and chain of signed records."""

    id: str
    vin: str
    key: ed25519.Ed25519PrivateKey
    csr: bytes
    tokens: list[str]


def _no_delay(_c: mqtt.Client, _u: object, sock: Any) -> None:
    if hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Gateway:
    """A raw MQTT gateway client (mTLS) that records when acks arrive: MQTT 5 on mosquitto,
    3.1.1 (``mqtt5`` false) on NATS's MQTT listener, whose ack subscription is QoS 0 as the
    agent's uplink makes it there (a NATS publish reaches MQTT subscribers at QoS 0)."""

    def __init__(self, device: str, port: int, ca: Path, cert: Path, key: Path,
                 mqtt5: bool = True) -> None:  # fmt: skip
        self.device = device
        self.acks: list[tuple[float, int]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device,
                                  protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
                                  clean_session=None if mqtt5 else True)  # fmt: skip
        self.client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_socket_open = _no_delay  # as edge_agent.uplink does
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(ack_topic(device), qos=1 if mqtt5 else 0)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.acks.append((time.perf_counter(), parse_ack(bytes(msg.payload))))

    def publish(self, payload: str) -> mqtt.MQTTMessageInfo:
        """One message: a record's JWS, or several separated by LF."""
        return self.client.publish(rec_topic(self.device), payload.encode(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Db:
    """One registry database of the bench (a SQLite file or a PostgreSQL database), read
    directly for what the ``Store`` protocol does not say: the registry's commit times."""

    def __init__(self, name: str, url: str, secrets: Path) -> None:
        self.name, self.url, self.secrets = name, url, secrets
        self._conn: Any = None

    def args(self) -> list[str]:
        return ["--db", self.url, "--secrets-dir", str(self.secrets)]

    def _query(self, sql: str) -> Any:
        if self._conn is None:
            if self.url.startswith("postgresql://"):
                import psycopg  # noqa: PLC0415 - only for --store postgresql

                self._conn = psycopg.connect(self.url, autocommit=True)
            else:
                self._conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
        return self._conn.execute(sql).fetchone()

    def stored(self) -> int:
        return int(self._query("SELECT count(*) FROM records")[0])

    def last_commit(self) -> float:
        """When the registry stored its last record (its own clock, epoch seconds)."""
        (last,) = self._query("SELECT max(received_at) FROM records")
        return parse_ts(last).timestamp()

    def wait_stored(self, count: int, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while (n := self.stored()) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"registry stuck at {n} of {count} records")
            time.sleep(0.05)


class Site(ABC):
    """The bench gateways' files and registry databases around one broker of their own (no
    other run's sessions or records in it); a subclass per broker says how to run it, how
    its workers start, and how a backlog is held for them."""

    #: what a worker logs once it receives (the bench waits for it)
    ready: str = ""
    #: the gateways' MQTT version (NATS's MQTT listener speaks only 3.1.1)
    mqtt5: bool = True

    def __init__(self, root: Path, devices: list[Device], pg: PgServer | None) -> None:
        self.root = root
        self.pg = pg
        root.mkdir(parents=True)
        self.ca = DeviceCa.open(root / "ca")
        self.devices = devices
        (root / "anchors").mkdir()
        (root / "anchors" / "ca.pem").write_bytes(cert_pem(self.ca.cert))  # no cards here
        for d in devices:
            write_private(root / f"{d.id}.key", key_pem(d.key))

    def database(self, name: str) -> Db:
        """A fresh registry database with every bench device enrolled."""
        url = self.pg.create_database(name) if self.pg else f"sqlite:///{self.root / name}.db"
        db = Db(name, url, self.root / f"{name}.secrets")
        store = open_store(url, secrets_dir=db.secrets)
        try:
            for d in self.devices:
                cert = enroll_device(store, self.ca, d.id, d.csr, vin=d.vin, fleet="bench")
                (self.root / f"{d.id}.pem").write_bytes(cert_pem(cert))
        finally:
            store.close()
        return db

    @abstractmethod
    def broker(self, db: Db) -> AbstractContextManager[object]:
        """The running broker, configured for ``db``'s devices."""
        raise NotImplementedError

    @abstractmethod
    def endpoint(self, index: int) -> tuple[int, Path]:
        """The MQTT port gateway ``index`` connects to, and the CA of the broker's certificate."""
        raise NotImplementedError

    @abstractmethod
    def worker_args(self, db: Db, n: int) -> list[str]:
        """``msp-registry serve`` arguments of worker ``n`` on this broker."""
        raise NotImplementedError

    def gateways(self) -> list[Gateway]:
        out = []
        for i, d in enumerate(self.devices):
            port, ca = self.endpoint(i)
            out.append(Gateway(d.id, port, ca, self.root / f"{d.id}.pem",
                               self.root / f"{d.id}.key", self.mqtt5))  # fmt: skip
        return out

    def workers(self, db: Db, count: int, extra: list[str]) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` registry workers at once; returns once every one receives (its log
        says so)."""
        paths = [self.root / f"worker-{db.name}-{n}.log" for n in range(count)]
        before = [self._ready_lines(p) for p in paths]
        procs = [self._start_worker(p, db, n, extra) for n, p in enumerate(paths)]
        deadline = time.monotonic() + 60
        for proc, path, seen in zip(procs, paths, before, strict=True):
            while len(self._ready_lines(path)) <= len(seen):
                if proc.poll() is not None or time.monotonic() > deadline:
                    stop(procs)
                    raise SystemExit(f"the registry worker is not receiving: see {path}")
                time.sleep(0.05)
        return procs

    def ready_at(self, db: Db, count: int) -> float:
        """When the first of workers ``0..count-1`` of ``db`` last logged that it receives
        (epoch seconds, from its log's time stamps)."""
        times = []
        for n in range(count):
            line = self._ready_lines(self.root / f"worker-{db.name}-{n}.log")[-1]
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            times.append(stamp.timestamp())  # logging's asctime is local time, as is this
        return min(times)

    def _ready_lines(self, path: Path) -> list[str]:
        text = path.read_text() if path.exists() else ""
        return [line for line in text.splitlines() if self.ready in line]

    def _start_worker(self, path: Path, db: Db, n: int,
                      extra: list[str]) -> subprocess.Popen[bytes]:  # fmt: skip
        log = path.open("ab")
        # a backlog flooded without the gateway's window: let every early record wait
        env = {**os.environ, "MSP_REGISTRY_MAX_WAITING": "1000000"}
        return subprocess.Popen(
            [sys.executable, "-m", "cloud_sync.cli", "-v", "serve",
             "--anchors", str(self.root / "anchors"), *db.args(),
             "--client-id", f"registry-{db.name}-{n}", *self.worker_args(db, n), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip

    @abstractmethod
    def hold(self, db: Db, workers: int, extra: list[str]) -> list[subprocess.Popen[bytes]]:
        """Before the backlog is published: what must run for the broker to keep it."""
        raise NotImplementedError

    @abstractmethod
    def release(self, db: Db, held: list[subprocess.Popen[bytes]], workers: int,
                extra: list[str], messages: int) -> tuple[list[subprocess.Popen[bytes]], float]:
        """Once the backlog of ``messages`` is published: ``workers`` workers draining it, and
        when they began (epoch seconds, the clock the registry stamps its commits with)."""
        raise NotImplementedError


class MosquittoSite(Site):
    """mosquitto (``msp-registry mosquitto-config``'s files), workers on a shared MQTT 5
    subscription. mosquitto queues messages only in the sessions of a shared subscription's
    connected members, so the workers are connected and subscribed, then frozen (SIGSTOP)
    while the backlog is published, then thawed (SIGCONT): the drain begins at the thaw."""

    ready = "subscribed to"

    def __init__(self, root: Path, devices: list[Device], pg: PgServer | None,
                 queued: int) -> None:  # fmt: skip
        super().__init__(root, devices, pg)
        self.dport, self.rport = free_port(), free_port()
        self.files: BrokerFiles = write_config(root / "broker", self.ca, BrokerLayout(
            device_port=self.dport, device_bind="127.0.0.1", registry_port=self.rport,
            fleet_port=free_port(), run_as=getpass.getuser(),
            max_queued_messages=queued))  # fmt: skip

    def broker(self, db: Db) -> AbstractContextManager[object]:
        return MosquittoProcess(self.files.config, (self.dport, self.rport))

    def endpoint(self, index: int) -> tuple[int, Path]:
        return self.dport, self.files.ca_cert

    def worker_args(self, db: Db, n: int) -> list[str]:
        return ["--broker", f"mqtt://127.0.0.1:{self.rport}", "--password-file",
                str(self.files.registry_secret), "--shared"]  # fmt: skip

    def hold(self, db: Db, workers: int, extra: list[str]) -> list[subprocess.Popen[bytes]]:
        procs = self.workers(db, workers, extra)
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        return procs

    def release(self, db: Db, held: list[subprocess.Popen[bytes]], workers: int,
                extra: list[str], messages: int) -> tuple[list[subprocess.Popen[bytes]], float]:
        began = time.time()  # the registry stamps its commits with the same wall clock
        for p in held:
            p.send_signal(signal.SIGCONT)
        return held, began


class NatsSite(Site):
    """A three-node NATS cluster with JetStream on free loopback ports
    (``msp-registry nats-config``'s files, run by the test kit ``tests/nats_cluster.py``),
    gateways on its MQTT listeners (MQTT 3.1.1, round robin over the nodes), workers
    ``msp-registry serve --nats-dir`` on the one durable consumer. The records stream holds
    the backlog with no worker running (one worker has made the stream and consumer, then
    stopped), so the workers start once it holds every message: the drain begins when the
    first of them logs that it is bound to the consumer."""

    ready = "bound to JetStream consumer"
    mqtt5 = False

    def __init__(self, root: Path, devices: list[Device], pg: PgServer | None) -> None:
        super().__init__(root, devices, pg)
        self.cluster: NatsCluster | None = None

    @contextmanager
    def broker(self, db: Db) -> Iterator[NatsCluster]:
        cluster = NatsCluster(self.root / "nats", db.url, self.root / "ca",
                              secrets_dir=db.secrets)  # fmt: skip
        with contextlib.redirect_stdout(sys.stderr):  # nats-config's "wrote ..." lines
            cluster.configure()
        cluster.start()
        self.cluster = cluster
        try:
            yield cluster
        finally:
            self.cluster = None
            cluster.stop()

    def _running(self) -> NatsCluster:
        if self.cluster is None:
            raise RuntimeError("the NATS cluster is not running: use NatsSite.broker()")
        return self.cluster

    def endpoint(self, index: int) -> tuple[int, Path]:
        cluster = self._running()
        return cluster.mqtt_ports[index % len(cluster.mqtt_ports)], cluster.ca_file

    def worker_args(self, db: Db, n: int) -> list[str]:
        return ["--nats-dir", str(self._running().outdir)]

    def hold(self, db: Db, workers: int, extra: list[str]) -> list[subprocess.Popen[bytes]]:
        if self._running().stream_messages() is None:  # a fresh cluster: make the stream
            stop(self.workers(db, 1, extra))
        return []

    def release(self, db: Db, held: list[subprocess.Popen[bytes]], workers: int,
                extra: list[str], messages: int) -> tuple[list[subprocess.Popen[bytes]], float]:
        cluster = self._running()
        deadline = time.monotonic() + 120
        while (cluster.stream_messages() or 0) < messages:
            if time.monotonic() > deadline:
                raise SystemExit(f"JetStream holds {cluster.stream_messages()} of {messages}"
                                 f" messages: see {cluster.outdir}/n*.log")  # fmt: skip
            time.sleep(0.05)
        procs = self.workers(db, workers, extra)
        return procs, self.ready_at(db, workers)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def drain_rate(site: Site, db: Db, workers: int, messages: list[tuple[int, str]],
               records: int, extra: list[str]) -> float:  # fmt: skip
    """Records/s committed by ``workers`` workers draining ``records`` from the broker: the
    backlog is published while the broker holds it (``Site.hold``), then the workers drain
    it (``Site.release``), the rate being records / (last commit - start of the drain)."""
    procs = site.hold(db, workers, extra)
    gws = site.gateways()
    try:
        infos = [gws[i].publish(payload) for i, payload in messages]
        for info in infos:
            info.wait_for_publish(120)
    finally:
        procs, began = site.release(db, procs, workers, extra, len(messages))
    try:
        db.wait_stored(records)
    finally:
        stop(procs)
        for gw in gws:
            gw.close()
    return records / (db.last_commit() - began)


def latencies(site: Site, db: Db, rate: float, seconds: float,
              start: list[int], extra: list[str]) -> list[float]:  # fmt: skip
    """Ack latencies (ms) of records offered at ``rate``/s round robin over the devices,
    continuing each chain from ``start[i]`` (advanced)."""
    procs = site.workers(db, 1, extra)
    gws = site.gateways()
    sent: list[tuple[int, int, float]] = []  # device index, seq, when
    try:
        began = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            k = i % len(gws)
            seq = start[k] + 1
            start[k] = seq
            sent.append((k, seq, time.perf_counter()))
            gws[k].publish(site.devices[k].tokens[seq - 1])
        db.wait_stored(sum(start))
        time.sleep(1.0)
    finally:
        stop(procs)
        for gw in gws:
            gw.close()
    out = []
    for k, seq, at in sent:
        acked = [t for t, s in gws[k].acks if s >= seq and t >= at]
        if acked:
            out.append((min(acked) - at) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--broker", choices=("mosquitto", "nats"), default="mosquitto")
    ap.add_argument("--workers", type=int, default=2, help="workers of the second run")
    ap.add_argument("--records", type=int, default=6000, help="records for the throughput runs")
    ap.add_argument("--devices", type=int, default=8, help="gateways the records come from")
    ap.add_argument("--rates", default="200,1000", help="offered rates for ack latency")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each latency run")
    ap.add_argument("--batch-records", type=int, default=1,
                    help="records per message in the backlog (a gateway that is behind sends"
                         " up to uplink.batch_records, 32, in one message)")  # fmt: skip
    ap.add_argument("--verify-workers", type=int, default=0,
                    help="--verify-workers of each registry worker")  # fmt: skip
    args = ap.parse_args()
    if args.broker == "nats" and nats_server() is None:
        raise SystemExit("--broker nats: nats-server is not installed (scripts/system-deps)")
    rates = [float(r) for r in args.rates.split(",")]
    per_device = -(-args.records // args.devices)
    latency_total = int(sum(rates) * args.seconds)
    chain = per_device + -(-latency_total // args.devices)
    print(f"signing {chain * args.devices} records of {args.devices} gateways ...",
          file=sys.stderr)  # fmt: skip
    devices = []
    for i in range(args.devices):
        key = ed25519.Ed25519PrivateKey.generate()
        name = f"gw-bench{i}"
        csr = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).sign(key, None)
        vin = f"JTBENCH{i:04d}"
        devices.append(Device(name, vin, key, csr.public_bytes(serialization.Encoding.PEM),
                              make_chain(Signer(key, name), vin, chain)))  # fmt: skip
    b = args.batch_records
    backlog = [(i, "\n".join(d.tokens[s:min(s + b, per_device)]))
               for s in range(0, per_device, b) for i, d in enumerate(devices)]  # fmt: skip
    stored_backlog = per_device * args.devices
    root = Path(tempfile.mkdtemp(prefix="msp-bench-"))
    bare_before = bare_verify_rate(devices[0].key.public_key(), devices[0].tokens[:3000])
    pg = PgServer() if args.store == "postgresql" else None
    if pg is not None:
        pg.start()
    try:
        one, many, lat, bare_after = run(args, root, devices, backlog, per_device, rates, pg,
                                         stored_backlog)  # fmt: skip
    finally:
        if pg is not None:
            pg.close()
    print_results(args, stored_backlog, bare_before, bare_after, one, many, lat)


def run(args: argparse.Namespace, root: Path, devices: list[Device],
        backlog: list[tuple[int, str]], per_device: int, rates: list[float],
        pg: PgServer | None,
        records: int) -> tuple[float, float, dict[float, list[float]], float]:  # fmt: skip
    """The three measurements: one worker's drain (and the bare rate again after it), the
    latency runs on the same worker's database, then ``--workers`` workers' drain."""
    extra = ["--verify-workers", str(args.verify_workers)] if args.verify_workers else []
    sample = devices[0].tokens[:3000]
    queued = records + int(sum(rates) * args.seconds) + 1000  # the broker drops beyond it

    def site(name: str) -> Site:
        if args.broker == "nats":
            return NatsSite(root / name, devices, pg)
        return MosquittoSite(root / name, devices, pg, queued)

    one_site = site("one")
    one_db = one_site.database("one")
    with one_site.broker(one_db):
        one = drain_rate(one_site, one_db, 1, backlog, records, extra)
        bare_after = bare_verify_rate(devices[0].key.public_key(), sample)
        start = [per_device] * args.devices
        lat = {rate: latencies(one_site, one_db, rate, args.seconds, start, extra)
               for rate in rates}  # fmt: skip
    many_site = site("many")
    many_db = many_site.database("many")
    with many_site.broker(many_db):
        many = drain_rate(many_site, many_db, args.workers, backlog, records, extra)
    return one, many, lat, bare_after


def print_results(args: argparse.Namespace, records: int, bare_before: float, bare_after: float,
                  one: float, many: float, lat: dict[float, list[float]]) -> None:  # fmt: skip
    bare = (bare_before + bare_after) / 2
    print(f"store {args.store}, broker {args.broker}, {args.devices} gateways, {records}"
          f" records, {args.batch_records} a message, verify-workers {args.verify_workers}")
    print(f"bare Ed25519 verify, one core:     {bare:8.0f} records/s"
          f" (before {bare_before:.0f}, after {bare_after:.0f} the one-worker run)")
    print(f"one worker, committed:             {one:8.0f} records/s"
          f" = {one / bare:.2f} x bare verification")  # fmt: skip
    print(f"{args.workers} workers, committed in total:    {many:8.0f} records/s"
          f" ({many / args.workers:.0f} per worker)")  # fmt: skip
    for rate, values in lat.items():
        if len(values) >= 2:
            q = statistics.quantiles(values, n=100)
            print(f"ack latency at {rate:5.0f} records/s offered: p50 {q[49]:7.1f} ms,"
                  f" p99 {q[98]:7.1f} ms ({len(values)} records, one worker)")  # fmt: skip



if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
