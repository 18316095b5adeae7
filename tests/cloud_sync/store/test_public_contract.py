"""The public statistics part of the ``Store`` protocol, the same on every back end: a stats
record kept as its chain place only, contributions clamped per vehicle under keyed tags, one
release per (cell, hour) with the k rule, late contributions dropped and counted, and nothing
of a contribution left after its release."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import pytest

from cloud_sync import cli
from cloud_sync.ingest import Ack, Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.public import PublicConfig
from cloud_sync.public.aggregation import BOUNDS
from cloud_sync.public.release import release
from cloud_sync.store import Store
from msp_protocol import bodies
from msp_protocol.jws import record_hash
from tests.cloud_sync.store.test_contract import send, sql
from tests.sync_kit import CardIssuer, Gateway, trip

HOUR = datetime(2026, 11, 18, 8, tzinfo=UTC)
H0, H1 = "2026-11-18T08:00:00Z", "2026-11-18T09:00:00Z"
A, B = (h3.latlng_to_cell(35.68 + i * 0.05, 139.76, 7) for i in range(2))
DUE = HOUR + timedelta(hours=3, seconds=1)  # hour H0 ended, and the 2 h grace period


def stats(hour: str, *cells: tuple[str, float]) -> bodies.Stats:
    return bodies.Stats(hour, tuple(bodies.CellStats(c, km, 100.0, km * 36.0, 0.1, 0.232)
                                    for c, km in cells))  # fmt: skip


def no_noise(value: int, scale: float) -> int:
    return value


def test_a_stats_record_is_kept_as_its_chain_place_only(
    store: Store, store_url: str, secrets: Path, device_ca: DeviceCa, card_issuer: CardIssuer,
    capsys,
) -> None:
    gw = Gateway("gw-1", "JTPUB0000001")
    store.enroll(gw.device_row(device_ca))
    ingestor = Ingestor(store, card_issuer.anchors())
    first = gw.sign(trip(), "trip")
    middle = gw.sign(stats(H0, (A, 2.0), (B, 1.0)), "stats")
    last = gw.sign(trip(), "trip")  # chains on the stats record's hash
    assert send(ingestor, gw, first, middle, middle, last) == [Ack("gw-1", 3)]
    assert store.rejections() == {"duplicate": 1}
    assert store.record_hash("gw-1", 2) == record_hash(middle)
    assert store.public_chain("gw-1") == [(2, record_hash(middle))]
    assert len(store.chain_records("gw-1")) == 2  # the trips; the stats JWS is not kept
    assert sql(store, "SELECT count(*) FROM records WHERE kind = 'stats'") == [(0,)]
    assert store.public_counters() == {"contributions": 2}
    tags = sql(store, "SELECT cell, hour, contributor FROM public_contributions ORDER BY cell")
    assert sorted((c, h) for c, h, _ in tags) == sorted([(A, H0), (B, H0)])
    assert len({t for _, _, t in tags}) == 2 and all("gw-1" not in t for _, _, t in tags)
    code = cli.main(["audit", "--db", store_url, "--secrets-dir", str(secrets), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)[0]["verdict"] == "ok: seqs 1..3"


def test_the_release_keeps_the_k_rule_the_clamp_and_deletes_the_contributions(
    store: Store, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    ingestor = Ingestor(store, card_issuer.anchors())
    gateways = [Gateway(f"gw-{i}", f"JTPUB000000{i}") for i in range(5)]
    for i, gw in enumerate(gateways):
        store.enroll(gw.device_row(device_ca))
        cells = [(A, 2.0)] if i == 4 else [(A, 2.0), (B, 1.0)]  # five in A, four in B
        send(ingestor, gw, gw.sign(stats(H0, *cells), "stats"))
    # a second trip of one vehicle in A in the same hour: its sum is clamped to the bound
    send(ingestor, gateways[0], gateways[0].sign(stats(H0, (A, 4.5)), "stats"))
    send(ingestor, gateways[0], gateways[0].sign(stats(H1, (A, 1.0)), "stats"))
    counts = release(store, PublicConfig(k=5), DUE, no_noise)
    assert (counts.released, counts.suppressed, counts.late) == (1, 1, 0)
    [row] = store.public_stats()
    assert (row.cell, row.hour, row.contributors, row.k) == (A, H0, 5, 5)
    assert row.distance_km == BOUNDS.distance_km + 4 * 2.0
    assert row.fuel_l == pytest.approx(0.2 + 4 * 0.1)  # two trips of gw-0, one each of four
    assert row.co2_kg == pytest.approx(0.464 + 4 * 0.232)
    assert row.duration_s == 2 * 100.0 + 4 * 100.0
    [(_, message)] = [(i, p) for i, p in store.fanout_pending(100) if "public" in p.topic]
    assert message.topic == f"msp/v1/public/stats/{A}" and message.retain
    assert json.loads(message.payload)["contributors"] == 5
    # hour H1 is not due yet; H0's contributions, published or not, are gone
    assert sql(store, "SELECT hour, count(*) FROM public_contributions GROUP BY hour") == [
        (H1, 1)]  # fmt: skip
    assert store.public_closed_before() == H1
    # a contribution for H0 arriving now is late: counted, dropped, never released
    send(ingestor, gateways[1], gateways[1].sign(stats(H0, (B, 1.0)), "stats"))
    assert store.public_counters()["late"] == 1
    assert sql(store, "SELECT count(*) FROM public_contributions WHERE hour = '" + H0 + "'") == [
        (0,)]  # fmt: skip
    later = release(store, PublicConfig(k=5), DUE + timedelta(hours=1), no_noise)
    assert (later.released, later.suppressed) == (0, 1)  # H1: one vehicle
    assert [r.hour for r in store.public_stats()] == [H0]
    assert store.counts()["public_contributions"] == 0
    assert store.public_stats(since=H1) == []
    assert store.public_counters() == {"contributions": 12, "late": 1, "released": 1,
                                       "suppressed": 2}  # fmt: skip
