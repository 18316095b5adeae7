"""The demo path: LocalDeployment (mosquitto with mTLS, or the embedded amqtt broker, and the
registry) and ``msp-agent uplink`` as a process."""

from __future__ import annotations

import pytest

from cloud_sync.local import LocalDeployment
from cloud_sync.sqlite_store import SqliteStore
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import NewRecord, Outbox
from tests.sync_deploy import T0
from tests.sync_kit import CardIssuer, trip


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_gateway_process_drains_into_a_local_deployment(tmp_path, card_issuer: CardIssuer,
                                                        broker: str) -> None:  # fmt: skip
    key = init_device_key(tmp_path / "gw" / "device.key", "gw-0001")
    outbox = Outbox.open(tmp_path / "gw" / "outbox.db", load_signer(key.key_path, "gw-0001"),
                         "JT123456789")  # fmt: skip
    outbox.append_many([NewRecord(trip(15.0, 2.0), T0 + i * 900) for i in range(12)])
    outbox.close()
    with LocalDeployment(tmp_path / "site", card_issuer.directory, broker=broker) as site:
        site.enroll("gw-0001", key.csr_path, vin="JT123456789", fleet="acme")
        site.drain("gw-0001", tmp_path / "gw" / "outbox.db", key.key_path, "JT123456789", 60)
    store = SqliteStore(site.config.db)
    try:
        assert store.chain_head("gw-0001").seq == 12
        assert store.counts()["trips"] == 12
    finally:
        store.close()
