"""The fault tests of ``test_faults`` on the three-node NATS cluster: registry workers on
JetStream (``msp-registry serve --nats-dir``, one durable consumer acked after the commit) with
a worker SIGKILLed and restarted (also while it holds an uncommitted batch), PostgreSQL
stopped and restarted, the workers' database connections cut. After each, every record
appended on every gateway is stored exactly once, every chain verifies (``msp-registry
audit``), every outbox is empty and JetStream holds nothing more."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox
from edge_agent.uplink import MqttUplink
from tests.cloud_sync.test_faults import PgDeployment, _fleet, _held, _logged, _stream_through
from tests.cloud_sync.test_nats_cluster import Workers, uplink_for
from tests.nats_cluster import NatsCluster, nats_server
from tests.pg_server import PgServer
from tests.sync_deploy import Deployment, GatewaySetup, wait_for
from tests.sync_kit import CardIssuer

pytestmark = pytest.mark.skipif(nats_server() is None, reason="nats-server not installed "
                                "(scripts/system-deps installs it)")  # fmt: skip

Fleet = list[tuple[GatewaySetup, Outbox]]


class SiteCluster(NatsCluster):
    """The cluster configured through the site's own ``msp-registry`` (its ``--db``, and
    ``--secrets-dir`` on PostgreSQL)."""

    def __init__(self, site: Deployment) -> None:
        super().__init__(site.root / "nats", site.root / "unused.db", site.root / "ca")
        self.site = site

    def registry(self, *args: str) -> int:
        return self.site.registry(*args)


def _extra(site: Deployment) -> tuple[str, ...]:
    return ("--secrets-dir", str(site.root / "secrets")) if isinstance(site, PgDeployment) else ()


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path, card_issuer: CardIssuer) -> Deployment:
    """The registry's files (no mosquitto), its database on each back end in turn."""
    if request.param == "sqlite":
        return Deployment(tmp_path, card_issuer)
    server: PgServer = request.getfixturevalue("pg_server")
    return PgDeployment(tmp_path, card_issuer, server.create_database())


@pytest.fixture
def pg_site(pg_server: PgServer, tmp_path: Path, card_issuer: CardIssuer) -> PgDeployment:
    return PgDeployment(tmp_path, card_issuer, pg_server.create_database())


@contextmanager
def _running(site: Deployment, count: int) -> Iterator[tuple[Fleet, NatsCluster, Workers]]:
    """``count`` gateways enrolled, the cluster configured for them and up, two workers."""
    fleet = _fleet(site, count)
    with SiteCluster(site) as cluster:
        workers = Workers(site, cluster, *_extra(site))
        workers.start(2)
        try:
            yield fleet, cluster, workers
        finally:
            workers.stop()
            for _, outbox in fleet:
                outbox.close()


def _through_the_cluster(site: Deployment, fleet: Fleet, cluster: NatsCluster,
                         workers: Workers, fault: Callable[[], None]) -> None:  # fmt: skip
    """``test_faults._stream_through`` with gateway ``i`` on node ``i`` (the others its
    fallbacks); then the workers still live and JetStream forgets every record."""

    def uplink(i: int, gw: GatewaySetup, outbox: Outbox) -> MqttUplink:
        return uplink_for(cluster, gw, outbox, i % len(cluster.nodes))

    _stream_through(site, fleet, fault, uplink)
    assert workers.alive()
    wait_for(lambda: cluster.stream_messages() == 0, "JetStream to forget what was stored")


def test_two_workers_one_killed_mid_stream_and_restarted(site: Deployment) -> None:
    with _running(site, 3) as (fleet, cluster, workers):

        def crash() -> None:
            workers.kill(0)  # what it pulled and never acked comes again after ack_wait
            total = sum(len(site.stored(gw.device)) for gw, _ in fleet)
            assert total < 180  # it died mid-stream
            time.sleep(1.0)  # worker-1 goes on alone meanwhile
            workers.restart(0)  # same client id, same durable consumer

        _through_the_cluster(site, fleet, cluster, workers, crash)


def test_a_worker_killed_while_it_holds_an_uncommitted_batch(tmp_path: Path,
                                                            card_issuer: CardIssuer) -> None:
    """SQLite locked by another process, worker-0 sees its commit fail (it holds pulled,
    unacked messages) and is SIGKILLed: JetStream redelivers them after ``ack_wait`` to
    whichever worker pulls, and they are stored once."""
    site = Deployment(tmp_path, card_issuer)
    log = site.root / "worker-0.log"
    with _running(site, 3) as (fleet, cluster, workers):

        def crash_holding() -> None:
            other = sqlite3.connect(site.db, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # the only writer until it ends
                wait_for(lambda: "the database failed" in log.read_text(errors="replace"),
                         "worker-0 to hold a batch it cannot commit")  # fmt: skip
                workers.kill(0)
            finally:
                other.execute("ROLLBACK")
                other.close()
            workers.restart(0)

        _through_the_cluster(site, fleet, cluster, workers, crash_holding)


def test_postgresql_stopped_and_restarted_mid_stream(pg_site: PgDeployment,
                                                     pg_server: PgServer) -> None:  # fmt: skip
    with _running(pg_site, 2) as (fleet, cluster, workers):

        def outage() -> None:
            pg_server.stop()  # -m immediate: like a crash of the database host
            try:
                _held(pg_site, fleet, workers.alive)  # nothing acked to a gateway meanwhile
            finally:
                pg_server.start()

        _through_the_cluster(pg_site, fleet, cluster, workers, outage)


def test_worker_connections_cut_while_they_hold_batches(pg_site: PgDeployment,
                                                        pg_server: PgServer) -> None:  # fmt: skip
    """The server ends the workers' sessions (``pg_terminate_backend``) while records flow:
    the call that sees it fails, the batch is held (not acked to JetStream), the store
    reconnects, the batch commits."""
    database = pg_site.url.rsplit("/", 1)[1]
    with _running(pg_site, 2) as (fleet, cluster, workers):

        def cut() -> None:
            deadline = time.monotonic() + 30
            while not _logged(pg_site, "the database failed"):
                assert time.monotonic() < deadline, "no batch was ever held"
                pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               f" WHERE datname = '{database}' AND pid <> pg_backend_pid()")
                time.sleep(0.1)
            assert workers.alive()

        _through_the_cluster(pg_site, fleet, cluster, workers, cut)
