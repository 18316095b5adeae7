"""Fault tests on a real deployment: broker, registry and gateway die or stall mid-stream, and
hostile input arrives through the broker. After each, every record appended on the gateway is
in the registry exactly once, the chain verifies, the outbox is empty, nothing forged stored."""

from __future__ import annotations

import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_sync import cli as registry_cli
from cloud_sync.ingest import MAX_PAYLOAD_BYTES
from cloud_sync.pki import DeviceCa, cert_pem, key_pem, write_private
from cloud_sync.store.open import open_store
from edge_agent.outbox import Outbox
from edge_agent.uplink import MqttUplink
from msp_protocol.jws import split
from msp_protocol.records import parse_record
from msp_protocol.topics import rec_topic
from tests.pg_server import PgServer
from tests.sync_deploy import Deployment, GatewaySetup, UplinkThread, wait_for
from tests.sync_kit import CardIssuer, Gateway, csr_pem, trip


def _midstream(deployment: Deployment, gw: GatewaySetup, outbox: Outbox, fault, recover) -> None:
    """Send 60 records, fault once some are committed, append 60 more, recover, drain."""
    gw.fill(outbox, 60)
    uplink = MqttUplink(deployment.uplink_config(gw, window=8), outbox)
    with UplinkThread(uplink):
        wait_for(lambda: len(deployment.stored(gw.device)) >= 10, "the first commits")
        fault()
        gw.fill(outbox, 60, start=60)
        recover()
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain", timeout=60)
    assert deployment.verify(gw, 120).records == 120


def test_broker_stopped_and_restarted(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    broker = deployment.broker
    assert broker is not None
    _midstream(deployment, gw, gw.open_outbox(), broker.stop, broker.start)


def test_registry_killed_and_restarted(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    _midstream(deployment, gw, gw.open_outbox(), deployment.kill_registry,
               deployment.start_registry)  # fmt: skip


def test_network_dropped(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    broker = deployment.broker
    assert broker is not None

    def stall() -> None:
        broker.pause()
        time.sleep(3)  # the link is dead for a while: publishes and acks stall

    _midstream(deployment, gw, gw.open_outbox(), stall, broker.resume)


def test_gateway_killed_and_restarted(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 400)
    outbox.close()
    cmd = [*deployment.uplink_command(gw.device, gw.outbox_path, gw.key, gw.vin),
           "--window", "2", "--timeout", "60", "--resend-after", "2"]
    first = subprocess.Popen(cmd)
    try:
        wait_for(lambda: len(deployment.stored("gw-1")) >= 10, "the first commits")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert len(deployment.stored("gw-1")) < 400  # it really died mid-stream
    assert subprocess.run(cmd, check=False, timeout=90).returncode == 0
    assert deployment.verify(gw, 400).records == 400
    outbox = gw.open_outbox()
    assert outbox.stats().rows == 0
    outbox.close()


def _publish_raw(deployment: Deployment, gw: GatewaySetup, payloads: list[bytes]) -> list[str]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gw.device, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(deployment.brokerdir / "device-ca.pem"), certfile=str(gw.cert),
                   keyfile=str(gw.key), cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    codes: list[str] = []
    client.on_publish = lambda _c, _u, _m, rc, _p: codes.append(str(rc))
    client.connect("127.0.0.1", deployment.device_port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(rec_topic(gw.device), payload, qos=1).wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes


def test_hostile_input_through_the_broker(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    revoked = deployment.enroll_gateway("gw-r", "JTREV00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 2)
    good = [r.jws for r in outbox.records()]
    with UplinkThread(MqttUplink(deployment.uplink_config(gw), outbox)):
        wait_for(lambda: outbox.stats().rows == 0, "the good records")
    # a device with a certificate from the CA that the registry never enrolled
    ca_dir = deployment.root / "ca"
    stranger = Gateway("gw-x", "JTXXX00001")
    issued = DeviceCa.open(ca_dir, create=False).issue_device("gw-x", csr_pem(stranger.key, "gw-x"))
    stranger_gw = GatewaySetup("gw-x", "JTXXX00001", deployment.root / "gw-x.key",
                               deployment.root / "gw-x.pem", deployment.root / "x.db")  # fmt: skip
    write_private(stranger_gw.key, key_pem(stranger.key))
    stranger_gw.cert.write_bytes(cert_pem(issued))
    assert deployment.registry("revoke", "gw-r") == 0
    forger = Gateway("gw-1", "JTCAR00001")  # right id, wrong key
    hostile = [
        forger.sign(trip(), "trip").encode(),  # bad_signature
        good[0].encode(),  # replayed: duplicate
        b"\x00\xff" * 500,  # random bytes: malformed
        b"A" * (MAX_PAYLOAD_BYTES + 1),  # oversized (the broker refuses far larger ones)
    ]
    assert _publish_raw(deployment, gw, hostile) == ["Success"] * 4
    revoked_outbox = revoked.open_outbox()
    revoked.fill(revoked_outbox, 1)
    _publish_raw(deployment, revoked, [next(iter(revoked_outbox.records())).jws.encode()])
    _publish_raw(deployment, stranger_gw, [stranger.sign(trip(), "trip").encode()])
    expected = {"bad_signature": 1, "duplicate": 1, "malformed": 1, "oversized": 1,
                "revoked_device": 1, "unknown_device": 1}  # fmt: skip
    wait_for(lambda: deployment.stats()["rejections"] == expected, f"rejections {expected}")
    counts = deployment.stats()["counts"]
    assert counts["records"] == 2 and counts["trips"] == 2
    assert deployment.verify(gw, 2).records == 2
    assert deployment.registry_proc is not None and deployment.registry_proc.poll() is None


def test_seq_reused_with_other_content_is_an_alarm(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry()
    outbox = gw.open_outbox()
    gw.fill(outbox, 1)
    with UplinkThread(MqttUplink(deployment.uplink_config(gw), outbox)):
        wait_for(lambda: outbox.stats().rows == 0, "the first record")
    outbox.close()
    # A clone of the key on another box: no outbox and no chain state, seq 1 again, other
    # content (a gateway that only lost its outbox continues after its reserved seqs).
    os.remove(gw.outbox_path)
    os.remove(gw.outbox_path.with_name(gw.outbox_path.name + ".chain"))
    clone = gw.open_outbox()
    clone.append(trip(99.0, 9.0), 1_796_000_000.0)
    _publish_raw(deployment, gw, [next(iter(clone.records())).jws.encode()])
    wait_for(lambda: deployment.stats()["rejections"] == {"seq_reused": 1}, "the alarm")
    assert deployment.stats()["counts"]["trips"] == 1


def test_two_registry_workers_share_the_load(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    deployment.start_registry("--shared", "--client-id", "registry-a")
    first = deployment.registry_proc
    deployment.start_registry("--shared", "--client-id", "registry-b")
    outbox = gw.open_outbox()
    gw.fill(outbox, 80)
    try:
        with UplinkThread(MqttUplink(deployment.uplink_config(gw, window=16), outbox)):
            wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain", timeout=60)
    finally:
        assert first is not None
        first.terminate()
        first.wait(10)
    assert deployment.verify(gw, 80).records == 80


def test_gateway_started_before_the_broker(deployment: Deployment) -> None:
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    broker = deployment.broker
    assert broker is not None
    broker.stop()
    outbox = gw.open_outbox()
    gw.fill(outbox, 10)
    uplink = MqttUplink(deployment.uplink_config(gw), outbox)
    with UplinkThread(uplink):
        time.sleep(1.5)  # the first connection attempts fail; paho keeps retrying, backing off
        assert not uplink.connected and outbox.stats().rows == 10
        broker.start()
        deployment.start_registry()
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert deployment.verify(gw, 10).records == 10


def test_registry_over_mutual_tls(deployment: Deployment) -> None:
    """A registry on another host than the broker: mTLS with a CN=registry certificate."""
    gw = deployment.enroll_gateway("gw-1", "JTCAR00001")
    issued = DeviceCa.open(deployment.root / "ca", create=False).issue_client("registry")
    cert, key = deployment.root / "registry.pem", deployment.root / "registry.key"
    cert.write_bytes(cert_pem(issued.cert))
    write_private(key, key_pem(issued.key))
    assert deployment.embedded is None and deployment.files is not None
    deployment.registry_proc = subprocess.Popen(
        [sys.executable, "-m", "cloud_sync.cli", "serve",
         "--broker", f"mqtts://127.0.0.1:{deployment.device_port}",
         "--tls-ca", str(deployment.files.ca_cert), "--tls-cert", str(cert),
         "--tls-key", str(key), "--anchors", str(deployment.anchors), "--db", str(deployment.db)],
    )  # fmt: skip
    outbox = gw.open_outbox()
    gw.fill(outbox, 5)
    with UplinkThread(MqttUplink(deployment.uplink_config(gw), outbox)):
        wait_for(lambda: outbox.stats().rows == 0, "the outbox to drain")
    assert deployment.verify(gw, 5).records == 5


class Workers:
    """Several ``msp-registry serve`` processes on one deployment, sharing the device stream
    (``--shared``), each known by its client id so that it can be killed and restarted with
    its persistent session."""

    def __init__(self, deployment: Deployment, *extra: str) -> None:
        self.deployment = deployment
        self.extra = extra
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.deployment.start_registry("--shared", "--client-id", f"registry-{name}",
                                       *self.extra)  # fmt: skip
        proc, self.deployment.registry_proc = self.deployment.registry_proc, None
        assert proc is not None
        self.procs[name] = proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def _fleet(deployment: Deployment, count: int) -> list[tuple[GatewaySetup, Outbox]]:
    gws = [deployment.enroll_gateway(f"gw-{i}", f"JTCAR0000{i}") for i in range(count)]
    return [(gw, gw.open_outbox()) for gw in gws]


def _stream_through(deployment: Deployment, fleet: list[tuple[GatewaySetup, Outbox]],
                    fault: Callable[[], None],
                    uplink: Callable[[int, GatewaySetup, Outbox], MqttUplink] | None = None,
                    ) -> None:  # fmt: skip
    """Every gateway sends 60 records; once some are committed, ``fault`` runs (it returns
    when the fault is over), 60 more are appended on each, and everything must drain: every
    record stored exactly once, every chain audited, every outbox empty. ``uplink(i, gw,
    outbox)`` makes gateway ``i``'s uplink (default: to the deployment's mosquitto)."""
    for gw, outbox in fleet:
        gw.fill(outbox, 60)
    with ExitStack() as stack:
        for i, (gw, outbox) in enumerate(fleet):
            stack.enter_context(UplinkThread(
                uplink(i, gw, outbox) if uplink is not None
                else MqttUplink(deployment.uplink_config(gw, window=8), outbox)))  # fmt: skip
        wait_for(lambda: sum(len(deployment.stored(gw.device)) for gw, _ in fleet) >= 20,
                 "the first commits")  # fmt: skip
        fault()
        for gw, outbox in fleet:
            gw.fill(outbox, 60, start=60)
        wait_for(lambda: all(o.stats().rows == 0 for _, o in fleet), "the outboxes to drain",
                 timeout=120)  # fmt: skip
    for gw, outbox in fleet:
        assert deployment.verify(gw, 120).records == 120  # exactly once, chained, audited
        assert outbox.stats().rows == 0
        outbox.close()


class PgDeployment(Deployment):
    """The same deployment with the registry on PostgreSQL (``--db postgresql://...``, its
    secret files in ``secrets/``)."""

    def __init__(self, root: Path, anchors: CardIssuer, url: str) -> None:
        super().__init__(root, anchors)
        self.config = replace(self.config, db=url, secrets_dir=root / "secrets")
        self.url = url

    def registry(self, *args: str) -> int:
        return registry_cli.main([*args, "--db", self.url, "--secrets-dir",
                                  str(self.root / "secrets"), "--ca-dir", str(self.root / "ca")])

    def start_registry(self, *extra: str) -> None:
        super().start_registry("--secrets-dir", str(self.root / "secrets"), *extra)

    def stored(self, device: str) -> list[tuple[int, str]]:
        store = open_store(self.url, secrets_dir=self.root / "secrets")
        try:
            tokens = store.chain_records(device)
        finally:
            store.close()
        return [(parse_record(split(t).payload).seq, t) for t in tokens]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_deployment(request: pytest.FixtureRequest, tmp_path: Path,
                   card_issuer: CardIssuer) -> Iterator[Deployment]:  # fmt: skip
    """The loopback deployment with the registry on each back end in turn."""
    if request.param == "sqlite":
        yield request.getfixturevalue("deployment")
        return
    yield from _pg_deployment(request.getfixturevalue("pg_server"), tmp_path, card_issuer)


@pytest.fixture
def pg_deployment(pg_server: PgServer, tmp_path: Path,
                  card_issuer: CardIssuer) -> Iterator[PgDeployment]:  # fmt: skip
    yield from _pg_deployment(pg_server, tmp_path, card_issuer)


def _pg_deployment(server: PgServer, tmp_path: Path,
                   card_issuer: CardIssuer) -> Iterator[PgDeployment]:  # fmt: skip
    deploy = PgDeployment(tmp_path, card_issuer, server.create_database())
    deploy.configure()
    assert deploy.broker is not None
    deploy.broker.start()
    try:
        yield deploy
    finally:
        deploy.stop()


def test_two_workers_one_killed_mid_stream_and_restarted(any_deployment: Deployment) -> None:
    deployment = any_deployment
    fleet = _fleet(deployment, 3)
    workers = Workers(deployment)
    workers.start("a")
    workers.start("b")

    def crash() -> None:
        workers.kill("a")
        total = sum(len(deployment.stored(gw.device)) for gw, _ in fleet)
        assert total < 180  # it died mid-stream
        time.sleep(1.0)  # b goes on alone meanwhile
        workers.start("a")  # same client id: its session, and what it never settled

    try:
        _stream_through(deployment, fleet, crash)
        assert workers.alive()
    finally:
        workers.stop()


def test_a_worker_holding_a_batch_while_the_database_is_locked(deployment: Deployment) -> None:
    """The worker's commit fails (SQLite's lock held by another process longer than its busy
    timeout): it keeps the batch, acks nothing, and commits once the database is back."""
    fleet = _fleet(deployment, 2)
    workers = Workers(deployment)
    workers.start("a")
    workers.start("b")

    def lock() -> None:
        other = sqlite3.connect(deployment.db, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the only writer until it ends
            stored = other.execute("SELECT count(*) FROM records").fetchone()[0]
            # records arrive meanwhile; none may be acked before it is committed
            _held(deployment, fleet, workers.alive)
            assert other.execute("SELECT count(*) FROM records").fetchone()[0] == stored
        finally:
            other.execute("ROLLBACK")
            other.close()

    try:
        _stream_through(deployment, fleet, lock)
        assert workers.alive()
    finally:
        workers.stop()


def _logged(deployment: Deployment, text: str) -> bool:
    """Whether a worker logged ``text``: in ``registry.log`` (``Deployment.start_registry``)
    or a ``worker-N.log`` (the NATS workers of ``test_nats_cluster``)."""
    logs = [deployment.root / "registry.log", *deployment.root.glob("worker-*.log")]
    return any(text in p.read_text(errors="replace") for p in logs if p.exists())


def _held(deployment: Deployment, fleet: list[tuple[GatewaySetup, Outbox]],
          alive: Callable[[], bool]) -> None:  # fmt: skip
    """While the database is away: a worker saw a commit fail, and for two seconds more
    (gateways sending, workers retrying) no gateway got an ack, since nothing can commit;
    the workers live on (``alive()``)."""
    wait_for(lambda: _logged(deployment, "the database failed"), "a failed commit")
    time.sleep(0.5)  # acks of what committed before the failure are delivered by now

    def acked() -> int:
        return 60 * len(fleet) - sum(o.stats().rows for _, o in fleet)

    before = acked()
    time.sleep(2.0)
    assert acked() == before
    assert alive()


def test_postgresql_stopped_and_restarted_mid_stream(pg_deployment: PgDeployment,
                                                     pg_server: PgServer) -> None:  # fmt: skip
    deployment = pg_deployment
    fleet = _fleet(deployment, 2)
    workers = Workers(deployment)
    workers.start("a")
    workers.start("b")

    def outage() -> None:
        pg_server.stop()  # -m immediate: like a crash of the database host
        try:
            _held(deployment, fleet, workers.alive)
        finally:
            pg_server.start()

    try:
        _stream_through(deployment, fleet, outage)
        assert workers.alive()
    finally:
        workers.stop()


def test_worker_connections_cut_while_they_hold_batches(pg_deployment: PgDeployment,
                                                        pg_server: PgServer) -> None:  # fmt: skip
    """The server ends the workers' sessions (``pg_terminate_backend``) while records flow:
    the call that sees it fails, the batch is held, the store reconnects, the batch commits."""
    deployment = pg_deployment
    fleet = _fleet(deployment, 2)
    workers = Workers(deployment)
    workers.start("a")
    workers.start("b")
    log = deployment.root / "registry.log"
    database = deployment.url.rsplit("/", 1)[1]

    def cut() -> None:
        deadline = time.monotonic() + 30
        while "the database failed" not in log.read_text():
            assert time.monotonic() < deadline, "no batch was ever held"
            pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           f" WHERE datname = '{database}' AND pid <> pg_backend_pid()")
            time.sleep(0.1)
        assert workers.alive()

    try:
        _stream_through(deployment, fleet, cut)
        assert workers.alive()
    finally:
        workers.stop()
