"""End to end: five gateways' contributions, built by the edge from their samples, over real
mosquitto (mTLS) to the registry process; a release; the retained public topic read with the
public credential anyone may have, which reads nothing else and cannot write."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3

from cloud_sync.mosquitto import PUBLIC_PASSWORD, PUBLIC_USER
from cloud_sync.recipients.signing import open_signed, registry_key
from cloud_sync.store.sqlite import SqliteStore
from edge_agent import signals as sig
from edge_agent.outbox import NewRecord
from edge_agent.public_stats import PublicStats
from edge_agent.samples import Sample
from edge_agent.scoring import Scorer, ScoringConfig
from msp_protocol import bodies
from msp_protocol.roles import REGISTRY_KEY_TOPIC
from tests.cloud_sync.test_fleets import Subscriber, drive
from tests.sync_deploy import Deployment, wait_for

START = datetime(2026, 11, 26, 1, 10, tzinfo=UTC).timestamp()
LAT, LON = 35.6692, 139.7586  # the centre of one res-7 cell in Chiyoda, Tokyo
CELL = h3.latlng_to_cell(LAT, LON, 7)


def contributions(speed_kmh: float) -> list[bodies.Stats]:
    """What a gateway's edge code makes of 60 s at ``speed_kmh`` north from the cell's centre
    (6 l/h): the scorer and the public statistics fed the same samples, as the agent does."""
    scorer = Scorer(ScoringConfig())
    public = PublicStats(scorer.config)
    t = START
    for i in range(600):
        t = START + i * 0.1
        samples = [Sample(sig.SPEED, speed_kmh, t), Sample(sig.FUEL_RATE, 6.0, t)]
        if i % 10 == 0:
            samples += [Sample(sig.LATITUDE, LAT + i * 1e-6, t), Sample(sig.LONGITUDE, LON, t)]
        for sample in samples:
            scorer.feed(sample)
            public.feed(sample, scorer.state, scorer.in_trip)
    [trip] = scorer.finish(t)
    return public.trip_ended(trip)


def test_gateways_to_the_retained_public_topic_read_with_the_public_credential(
    deployment: Deployment, tmp_path: Path
) -> None:
    gateways = [deployment.enroll_gateway(f"gw-pub{i}", f"JTPUBLIC0000{i:05d}") for i in range(5)]
    creds = tmp_path / "creds"
    assert deployment.registry("fleet", "add", "acme", "--out", str(creds), "--password") == 0
    assert deployment.broker is not None
    deployment.broker.stop()  # the broker learns fleet users from the regenerated configuration
    deployment.configure()
    deployment.broker.start()
    deployment.start_registry()
    speeds = [30.0, 40.0, 50.0, 60.0, 45.0]
    for gw, speed in zip(gateways, speeds, strict=True):
        made = contributions(speed)
        assert [c.cell for b in made for c in b.cells] == [CELL]
        drive(deployment, gw, [NewRecord(body, START + 60, None) for body in made])

    def taken() -> bool:
        store = SqliteStore(deployment.db)
        try:
            return store.public_counters().get("contributions", 0) == 5
        finally:
            store.close()

    wait_for(taken, "the registry to take the five contributions")
    now = datetime.fromtimestamp(START, UTC).replace(minute=0) + timedelta(hours=3, minutes=1)
    assert deployment.registry("public", "release", "--k", "5", "--now", now.isoformat()) == 0

    ca = deployment.brokerdir / "device-ca.pem"
    # the fleet sees its gateways' retained keys on msp/v1/fleet/acme/keys/... (and the
    # registry's own key, which everyone may read), never a public statistic
    acme = Subscriber("fleet.acme", "acme")
    acme.connect(deployment.fleet_port, ca,
                 password=(creds / "fleet.acme.secret").read_text().strip())  # fmt: skip
    try:
        acme.subscribe("msp/v1/#")
        wait_for(lambda: len(acme.topics()) >= 6, "the fleet's retained device keys")
        assert all(t.startswith("msp/v1/fleet/acme/keys/") or t == REGISTRY_KEY_TOPIC
                   for t in acme.topics())  # fmt: skip
    finally:
        acme.close()
    anyone = Subscriber(PUBLIC_USER, "anyone")
    anyone.connect(deployment.fleet_port, ca, password=PUBLIC_PASSWORD)
    try:
        assert anyone.subscribe("msp/v1/#") == ["Granted QoS 1"]
        topic = f"msp/v1/public/stats/{CELL}"
        wait_for(lambda: {topic, REGISTRY_KEY_TOPIC} <= set(anyone.topics()),
                 "the retained public statistic and the registry's key")  # fmt: skip
        # the fleets' retained device keys are on msp/v1/fleet/...: the public user gets none
        assert set(anyone.topics()) == {topic, REGISTRY_KEY_TOPIC}
        received = dict(anyone.received)
        payload = received[topic]
        value = json.loads(payload)
        # signed by the registry: its JWS over the other fields verifies with the published key
        signed = open_signed(value["registry_jws"].encode(),
                             registry_key(received[REGISTRY_KEY_TOPIC]))  # fmt: skip
        assert signed == {k: v for k, v in value.items() if k != "registry_jws"}
        assert value["cell"] == CELL and value["hour"] == "2026-11-26T01:00:00Z"
        assert value["k"] == 5 and value["epsilon"] == 1.0
        assert isinstance(value["contributors"], int)
        for key in ("distance_km", "duration_s", "fuel_l", "co2_kg"):
            assert isinstance(value[key], float | int), key
        for gw in gateways:
            assert gw.device.encode() not in payload and gw.vin.encode() not in payload
        # the credential is read-only: a forged statistic never reaches anyone
        assert anyone.client is not None
        anyone.client.publish(topic, b'{"forged": true}', qos=1, retain=True)
        wait_for(lambda: len(anyone.pubacks) == 1, "the broker's answer to the forgery")
    finally:
        anyone.close()
    later = Subscriber(PUBLIC_USER, "later")
    later.connect(deployment.fleet_port, ca, password=PUBLIC_PASSWORD)
    try:
        later.subscribe(f"msp/v1/public/stats/{CELL}")
        wait_for(lambda: bool(later.received), "the retained message for a late subscriber")
        assert json.loads(later.received[0][1]) == value  # still the registry's
    finally:
        later.close()
