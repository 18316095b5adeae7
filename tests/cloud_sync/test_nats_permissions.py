"""The permissions ``msp-registry nats-config`` generates, enforced by a real three-node NATS
cluster: checked from the server's side (what arrives), never from a client's PUBACK, which
MQTT 3.1.1 sends even for a publish the server dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud_sync.nats_clients import CertClient, NatsRegistryClient
from tests.nats_cluster import NatsCluster, nats_server
from tests.sync_deploy import Deployment, GatewaySetup, wait_for
from tests.sync_kit import CardIssuer

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server not installed "
                                "(scripts/system-deps installs it)")  # fmt: skip


@pytest.fixture
def site(tmp_path: Path, card_issuer: CardIssuer) -> Deployment:
    return Deployment(tmp_path, card_issuer)


@pytest.fixture
def gateways(site: Deployment) -> list[GatewaySetup]:
    return [site.enroll_gateway("gw-1", "JTCAR00001", "acme"),
            site.enroll_gateway("gw-2", "JTCAR00002", "beta")]  # fmt: skip


@pytest.fixture
def cluster(site: Deployment, gateways: list[GatewaySetup]) -> Iterator[NatsCluster]:
    site.add_fleet("acme")
    site.add_fleet("beta")
    with NatsCluster(site.root / "nats", site.db, site.root / "ca") as nats:
        yield nats


@pytest.fixture
def registry(cluster: NatsCluster) -> Iterator[NatsRegistryClient]:
    client = NatsRegistryClient(cluster.client_urls[2:], cluster.registry_password)
    yield client
    client.close()


def _gateway(cluster: NatsCluster, gw: GatewaySetup, node: int) -> CertClient:
    client = CertClient(gw.device, cluster.mqtt_ports[node], cluster.ca_file, gw.cert, gw.key)
    assert not client.connect().is_failure
    return client


def _fleet(site: Deployment, cluster: NatsCluster, fleet: str, node: int) -> CertClient:
    creds = site.fleetdir
    client = CertClient(f"fleet.{fleet}-test", cluster.mqtt_ports[node], cluster.ca_file,
                        creds / f"fleet.{fleet}.pem", creds / f"fleet.{fleet}.key")  # fmt: skip
    assert not client.connect().is_failure
    return client


def test_a_device_publishing_on_another_devices_topic_delivers_nothing(
    cluster: NatsCluster, registry: NatsRegistryClient, gateways: list[GatewaySetup]
) -> None:
    registry.subscribe("msp.v1.dev.*.rec")
    gw1 = _gateway(cluster, gateways[0], node=0)
    try:
        gw1.publish("msp/v1/dev/gw-2/rec", b"forged")
        gw1.publish("msp/v1/dev/gw-1/rec", b"own")  # after the forged one, on one connection
        wait_for(lambda: (("msp.v1.dev.gw-1.rec", b"own") in registry.received), "own record")
    finally:
        gw1.close()
    assert registry.received == [("msp.v1.dev.gw-1.rec", b"own")]
    assert 'Publish Violation - User "CN=gw-1", Subject "msp.v1.dev.gw-2.rec"' in cluster.log("n1")


def test_a_device_reads_only_its_own_acks(
    cluster: NatsCluster, registry: NatsRegistryClient, gateways: list[GatewaySetup]
) -> None:
    gw1, gw2 = _gateway(cluster, gateways[0], 0), _gateway(cluster, gateways[1], 1)
    try:
        assert gw1.subscribe("msp/v1/dev/gw-2/ack", qos=0)[0].is_failure
        assert not gw1.subscribe("msp/v1/dev/gw-1/ack", qos=0)[0].is_failure
        assert not gw2.subscribe("msp/v1/dev/gw-2/ack", qos=1)[0].is_failure
        registry.publish("msp.v1.dev.gw-2.ack", b'{"seq":2}')
        registry.publish("msp.v1.dev.gw-1.ack", b'{"seq":1}')
        gw1.wait_message(b'{"seq":1}')
        gw2.wait_message(b'{"seq":2}')
    finally:
        gw1.close()
        gw2.close()
    assert gw1.messages == [("msp/v1/dev/gw-1/ack", b'{"seq":1}')]
    assert gw2.messages == [("msp/v1/dev/gw-2/ack", b'{"seq":2}')]


def test_a_fleet_cannot_read_another_fleet(
    site: Deployment, cluster: NatsCluster, registry: NatsRegistryClient
) -> None:
    acme, beta = _fleet(site, cluster, "acme", 0), _fleet(site, cluster, "beta", 1)
    try:
        assert acme.subscribe("msp/v1/fleet/beta/#", qos=1)[0].is_failure
        assert acme.subscribe("msp/v1/#", qos=0)[0].is_failure
        # the listener's own delivery subjects are no way round: MQTT cannot name them
        assert acme.subscribe("$MQTT/sub/#", qos=0)[0].is_failure
        assert not acme.subscribe("msp/v1/fleet/acme/#", qos=1)[0].is_failure
        assert not beta.subscribe("msp/v1/fleet/beta/#", qos=1)[0].is_failure
        registry.publish("msp.v1.fleet.beta.trip", b"beta's trip")
        registry.publish("msp.v1.fleet.acme.trip", b"acme's trip")
        acme.wait_message(b"acme's trip")
        beta.wait_message(b"beta's trip")
        acme.publish("msp/v1/fleet/beta/trip", b"acme forging")  # fleets publish nothing
        beta.publish("msp/v1/fleet/beta/trip", b"beta publishing")
        registry.publish("msp.v1.fleet.beta.trip", b"last")
        beta.wait_message(b"last")
    finally:
        acme.close()
        beta.close()
    assert acme.messages == [("msp/v1/fleet/acme/trip", b"acme's trip")]
    assert beta.messages == [("msp/v1/fleet/beta/trip", b"beta's trip"),
                             ("msp/v1/fleet/beta/trip", b"last")]  # fmt: skip


def test_revocation_rewrites_the_permissions_and_the_cluster_drops_the_device(
    site: Deployment, cluster: NatsCluster, registry: NatsRegistryClient,
    gateways: list[GatewaySetup],
) -> None:
    registry.subscribe("msp.v1.dev.*.rec")
    gw1, gw2 = _gateway(cluster, gateways[0], 0), _gateway(cluster, gateways[1], 1)
    try:
        code = site.registry("revoke", "gw-2", "--nats-dir", str(cluster.outdir))
        assert code == 0
        gw2.disconnects.get(timeout=20)  # the reload dropped its connection
        gw2.close()
        again = CertClient("gw-2", cluster.mqtt_ports[2], cluster.ca_file, gateways[1].cert,
                           gateways[1].key)  # fmt: skip
        assert again.connect().is_failure  # its certificate maps to no user any more
        again.close()
        gw1.publish("msp/v1/dev/gw-1/rec", b"still here")
        wait_for(lambda: len(registry.received) == 1, "gw-1's record")
    finally:
        gw1.close()
    assert registry.received == [("msp.v1.dev.gw-1.rec", b"still here")]
    assert '"CN=gw-2"' not in (cluster.outdir / "auth.conf").read_text()
