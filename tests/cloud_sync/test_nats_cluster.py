"""Gateways (the real ``MqttUplink``) → a three-node NATS cluster (MQTT listener, JetStream) →
registry workers (``msp-registry serve --nats-dir``, one durable consumer) → SQLite → acks
back by NATS publish → outboxes empty; and the same with one node killed mid-stream."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.store.sqlite import SqliteStore
from edge_agent.outbox import Outbox
from edge_agent.uplink import MqttUplink, UplinkConfig
from tests.cloud_sync.nats_clients import CertClient
from tests.nats_cluster import NatsCluster, nats_server
from tests.sync_deploy import Deployment, GatewaySetup, UplinkThread, wait_for
from tests.sync_kit import CardIssuer

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server not installed "
                                "(scripts/system-deps installs it)")  # fmt: skip


class Workers:
    """``msp-registry serve --nats-dir`` processes sharing the JetStream consumer; worker
    ``i`` has client id ``worker-i`` and logs to ``worker-i.log``; ``extra`` options go to
    every one (``--secrets-dir`` for PostgreSQL)."""

    def __init__(self, site: Deployment, cluster: NatsCluster, *extra: str) -> None:
        self.site = site
        self.cluster = cluster
        self.extra = extra
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        with (self.site.root / f"worker-{i}.log").open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "cloud_sync.cli", "-v", "serve",
                 "--nats-dir", str(self.cluster.outdir), "--client-id", f"worker-{i}",
                 "--anchors", str(self.site.anchors), "--db", str(self.site.db), *self.extra],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def start(self, count: int) -> None:
        for _ in range(count):
            self.procs.append(self._spawn(len(self.procs)))

    def kill(self, i: int) -> None:
        """SIGKILL worker ``i`` (whatever it pulled and did not ack stays with JetStream)."""
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def restart(self, i: int) -> None:
        """Start worker ``i`` again, same client id."""
        self.procs[i] = self._spawn(i)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


@pytest.fixture
def site(tmp_path: Path, card_issuer: CardIssuer) -> Deployment:
    return Deployment(tmp_path, card_issuer)


@pytest.fixture
def gateways(site: Deployment) -> list[GatewaySetup]:
    return [site.enroll_gateway(f"gw-{i}", f"JTCAR0000{i}", "acme") for i in range(1, 4)]


@pytest.fixture
def cluster(site: Deployment, gateways: list[GatewaySetup]) -> Iterator[NatsCluster]:
    with NatsCluster(site.root / "nats", site.db, site.root / "ca") as nats:
        yield nats


@pytest.fixture
def workers(site: Deployment, cluster: NatsCluster) -> Iterator[Workers]:
    w = Workers(site, cluster)
    yield w
    w.stop()


def uplink_for(cluster: NatsCluster, gw: GatewaySetup, outbox: Outbox, first: int,
               window: int = 8) -> MqttUplink:  # fmt: skip
    """A gateway whose first broker is node ``first``, the other nodes its fallbacks."""
    ports = cluster.mqtt_ports[first:] + cluster.mqtt_ports[:first]
    config = UplinkConfig(
        device=gw.device, port=ports[0], fallbacks=tuple(("127.0.0.1", p) for p in ports[1:]),
        ca_file=cluster.ca_file, cert_file=gw.cert, key_file=gw.key, mqtt5=False, window=window,
        resend_after_s=3.0, backoff_min_s=1, backoff_max_s=2, keepalive_s=5,
        failover_after=1, failback_s=2.0, probe_s=0.3,
    )  # fmt: skip
    return MqttUplink(config, outbox)


def test_gateways_through_the_cluster_to_the_registry_and_back(
    site: Deployment, cluster: NatsCluster, workers: Workers, gateways: list[GatewaySetup]
) -> None:
    workers.start(2)
    outboxes = [gw.open_outbox() for gw in gateways]
    for gw, outbox in zip(gateways, outboxes, strict=True):
        gw.fill(outbox, 40)
    with contextlib.ExitStack() as stack:
        uplinks = [stack.enter_context(UplinkThread(uplink_for(cluster, gw, outbox, i)))
                   for i, (gw, outbox) in enumerate(zip(gateways, outboxes, strict=True))]
        for outbox in outboxes:
            wait_for(lambda o=outbox: o.stats().rows == 0, "every outbox to drain", timeout=90)
    for gw in gateways:
        assert site.verify(gw, 40).records == 40
    assert [u.endpoint[1] for u in uplinks] == cluster.mqtt_ports  # each on its first node
    wait_for(lambda: cluster.stream_messages() == 0, "JetStream to forget what was stored")


def test_a_node_killed_mid_stream_gateways_fail_over_and_the_node_comes_back(
    site: Deployment, cluster: NatsCluster, workers: Workers, gateways: list[GatewaySetup]
) -> None:
    workers.start(2)
    outboxes = [gw.open_outbox() for gw in gateways]
    for gw, outbox in zip(gateways, outboxes, strict=True):
        gw.fill(outbox, 60)
    with contextlib.ExitStack() as stack:
        uplinks = [stack.enter_context(UplinkThread(uplink_for(cluster, gw, outbox, i)))
                   for i, (gw, outbox) in enumerate(zip(gateways, outboxes, strict=True))]
        for gw in gateways:
            wait_for(lambda g=gw: len(site.stored(g.device)) >= 10, "the first commits")
        cluster.kill("n1")  # gw-1's node, mid-stream
        for gw, outbox in zip(gateways, outboxes, strict=True):
            gw.fill(outbox, 60, start=60)
        for outbox in outboxes:
            wait_for(lambda o=outbox: o.stats().rows == 0, "the outboxes to drain on two nodes",
                     timeout=120)  # fmt: skip
        assert uplinks[0].endpoint[1] != cluster.mqtt_ports[0]  # gw-1 failed over
        cluster.restart("n1")
        wait_for(lambda: uplinks[0].endpoint[1] == cluster.mqtt_ports[0], "gw-1 back on n1",
                 timeout=60)  # fmt: skip
        for gw, outbox in zip(gateways, outboxes, strict=True):
            gw.fill(outbox, 20, start=120)
        for outbox in outboxes:
            wait_for(lambda o=outbox: o.stats().rows == 0, "the outboxes to drain again",
                     timeout=120)  # fmt: skip
    for gw in gateways:
        assert site.verify(gw, 140).records == 140  # exactly once, in a chain that verifies
    assert uplinks[0].stats().failovers == 2
    wait_for(lambda: cluster.stream_messages() == 0, "JetStream to forget what was stored")


def test_the_cluster_holds_records_until_a_worker_stores_them_through_a_node_kill(
    site: Deployment, cluster: NatsCluster, workers: Workers, gateways: list[GatewaySetup]
) -> None:
    gw = gateways[0]
    workers.start(1)  # the first worker creates the stream; then every worker is down
    wait_for(lambda: cluster.stream_messages() == 0, "the records stream")
    workers.stop()
    outbox = gw.open_outbox()
    gw.fill(outbox, 30)
    uplink = uplink_for(cluster, gw, outbox, 1, window=64)
    with UplinkThread(uplink):  # no registry: nothing is acked
        wait_for(lambda: uplink.stats().published == 30, "every record published")
        wait_for(lambda: (cluster.stream_messages() or 0) >= 1, "JetStream to hold them")
    held = cluster.stream_messages()
    cluster.kill("n1")  # one of the three replicas
    workers.start(1)
    wait_for(lambda: len(site.stored(gw.device)) == 30, "the worker to store what was held",
             timeout=60)  # fmt: skip
    assert site.verify(gw, 30).records == 30
    wait_for(lambda: cluster.stream_messages() == 0, "JetStream to forget what was stored")
    assert held is not None and held >= 1
    assert outbox.stats().rows == 30  # the gateway was gone: no ack reached it
    with UplinkThread(uplink_for(cluster, gw, outbox, 1)):  # it comes back and re-sends
        wait_for(lambda: outbox.stats().rows == 0, "the duplicates' acks to empty the outbox")
    assert site.verify(gw, 30).records == 30  # still exactly once
    cluster.restart("n1")


def test_retained_publications_reach_a_late_fleet_subscriber(
    site: Deployment, cluster: NatsCluster, workers: Workers, gateways: list[GatewaySetup]
) -> None:
    # the fleet is added with the cluster running: its user comes with the reload
    assert site.registry("fleet", "add", "acme", "--out", str(site.fleetdir),
                         "--nats-dir", str(cluster.outdir)) == 0  # fmt: skip
    workers.start(1)

    def fanned_out() -> bool:
        store = SqliteStore(site.db)
        try:
            return not store.fanout_pending(100)
        finally:
            store.close()

    wait_for(fanned_out, "the device keys to be taken by the cluster")
    fleet = CertClient("fleet.acme-late", cluster.mqtt_ports[2], cluster.ca_file,
                       site.fleetdir / "fleet.acme.pem", site.fleetdir / "fleet.acme.key")
    assert not fleet.connect().is_failure
    try:
        assert not fleet.subscribe("msp/v1/fleet/acme/#", qos=1)[0].is_failure
        wait_for(lambda: len(fleet.messages) == 3, "the three retained device keys")
    finally:
        fleet.close()
    keys = {topic: json.loads(payload) for topic, payload in fleet.messages}
    assert sorted(keys) == [f"msp/v1/fleet/acme/keys/gw-{i}" for i in range(1, 4)]
    assert keys["msp/v1/fleet/acme/keys/gw-1"]["device"] == "gw-1"
