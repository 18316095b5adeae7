"""The demo path: LocalDeployment (mosquitto with mTLS, or the embedded amqtt broker, and the
registry) and ``msp-agent uplink`` as a process."""

from __future__ import annotations

import subprocess

import pytest

from cloud_sync.local import LocalDeployment
from cloud_sync.store.sqlite import SqliteStore
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


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_fleet_feeds_side_by_side(tmp_path, card_issuer: CardIssuer, broker: str) -> None:
    """What the demo shows: two fleets' operators, each seeing only its own vehicle's trips,
    every one verified against the device keys the registry published to that fleet."""
    gateways = {}
    for device, vin in (("gw-0001", "JTACME00001"), ("gw-0002", "JTRENT00001")):
        key = init_device_key(tmp_path / device / "device.key", device)
        outbox = Outbox.open(tmp_path / device / "outbox.db",
                             load_signer(key.key_path, device), vin)  # fmt: skip
        outbox.append_many([NewRecord(trip(15.0 + i, 1.0), T0 + i * 900) for i in range(2)])
        outbox.close()
        gateways[device] = (key, vin)
    with LocalDeployment(tmp_path / "site", card_issuer.directory, broker=broker) as site:
        for (device, (key, vin)), fleet in zip(gateways.items(), ("acme", "rental"), strict=True):
            site.enroll(device, key.csr_path, vin=vin, fleet=fleet)
            site.add_fleet(fleet, password=fleet == "rental")
        watch = subprocess.Popen([*site.watch_command("acme", "rental", timeout=60), "--count",
                                  "2", "--width", "70"], stdout=subprocess.PIPE, text=True)
        try:
            assert watch.stdout is not None
            # the header, then each fleet's device key: both operators are subscribed
            lines = [watch.stdout.readline() for _ in range(3)]
            assert lines[0].split() == ["==", "acme", "==", "==", "rental", "=="]
            for device, (key, vin) in gateways.items():
                site.drain(device, tmp_path / device / "outbox.db", key.key_path, vin, 60)
            out, _ = watch.communicate(timeout=90)
        finally:
            watch.kill()
    rows = [line.rstrip("\n") for line in lines[1:] + out.splitlines() if line.strip()]
    acme = sorted(r.strip() for r in rows if not r.startswith(" "))
    rental = sorted(r[70:] for r in rows if r.startswith(" " * 70))
    assert acme == ["· key of gw-0001 (EdDSA)",
                    "✓ trip JTACME00001 #1 no driver 15.0 km, score 80.0",
                    "✓ trip JTACME00001 #2 no driver 16.0 km, score 80.0"]  # fmt: skip
    assert rental == ["· key of gw-0002 (EdDSA)",
                      "✓ trip JTRENT00001 #1 no driver 15.0 km, score 80.0",
                      "✓ trip JTRENT00001 #2 no driver 16.0 km, score 80.0"]  # fmt: skip
