"""The registry's public statistics: contributions from verified stats records, k-anonymous
releases with OpenDP noise, nothing of a device in what is published or kept, and the attacks
of issue 14 failing. Real SQLite stores, real signatures, real OpenDP noise."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sqlite3
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import pytest

from cloud_sync import cli
from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.public import PublicConfig, PublicError
from cloud_sync.public.aggregation import BOUNDS
from cloud_sync.public.export import to_csv, to_geojson
from cloud_sync.public.noise import OpenDpLaplace, scales
from cloud_sync.public.release import release
from cloud_sync.republish import fleet_pseudonym
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.store.sqlite_schema import SCHEMA_VERSION
from msp_protocol import bodies
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway, trip

HOUR = datetime(2026, 11, 18, 8, tzinfo=UTC)  # inside the test certificates' validity
CELLS = [h3.latlng_to_cell(35.68 + i * 0.03, 139.76, 7) for i in range(40)]


def hour(n: int = 0) -> str:
    return (HOUR + timedelta(hours=n)).strftime("%Y-%m-%dT%H:00:00Z")


def after(n: int = 0, config: PublicConfig | None = None) -> datetime:
    """An instant at which hour ``n`` is due (its end plus the grace period)."""
    grace = (config or PublicConfig()).grace_s
    return HOUR + timedelta(hours=n + 1, seconds=grace + 1)


def cell(c: str, km: float = 2.0, s: float = 180.0, fuel: float | None = 0.2) -> bodies.CellStats:
    return bodies.CellStats(c, km, s, km / s * 3600, fuel, None if fuel is None else fuel * 2.32)


def zero(value: int, scale: float) -> int:
    """No noise: for checking the exact sums the noise is added to."""
    return value


class Fleet:
    """``n`` enrolled gateways in one store, each signing stats records into its chain."""

    def __init__(self, store: SqliteStore, ca: DeviceCa, issuer: CardIssuer, n: int) -> None:
        self.store = store
        self.ingestor = Ingestor(store, issuer.anchors())
        self.gateways = [Gateway(f"gw-{i:04d}", f"JTVIN{i:012d}") for i in range(n)]
        for gw in self.gateways:
            store.enroll(gw.device_row(ca))
        self.tokens: list[str] = []

    def send(self, gw: Gateway, at: str, *cells: bodies.CellStats) -> str:
        token = gw.sign(bodies.Stats(at, tuple(cells)), "stats")
        self.tokens.append(token)
        self.ingestor.process([(rec_topic(gw.device), token.encode())])
        return token

    def all_send(self, at: str, *cells: bodies.CellStats) -> None:
        for gw in self.gateways:
            self.send(gw, at, *cells)


@pytest.fixture
def fleet6(store: SqliteStore, device_ca: DeviceCa, card_issuer: CardIssuer) -> Fleet:
    return Fleet(store, device_ca, card_issuer, 6)


def published(store: SqliteStore) -> list[dict[str, object]]:
    return [json.loads(p.payload) for _, p in store.fanout_pending(10_000)
            if p.topic.startswith("msp/v1/public/")]  # fmt: skip


def test_k_below_five_is_refused() -> None:
    for k in (0, 1, 4):
        with pytest.raises(PublicError, match="below 5"):
            PublicConfig(k=k)
    assert PublicConfig(k=5).k == 5
    with pytest.raises(PublicError, match="epsilon"):
        PublicConfig(epsilon=0.0)


def test_a_cell_with_k_minus_one_contributors_is_never_published(fleet6: Fleet) -> None:
    store, gws = fleet6.store, fleet6.gateways
    a, b = CELLS[0], CELLS[1]
    for gw in gws[:4]:  # four vehicles in cell a, each twice: still four contributors
        fleet6.send(gw, hour(), cell(a))
        fleet6.send(gw, hour(), cell(a, 1.0))
    for gw in gws[:5]:  # five in cell b
        fleet6.send(gw, hour(), cell(b))
    assert store.counts()["public_contributions"] == 4 + 5  # one row per (cell, hour, vehicle)
    counts = release(store, PublicConfig(k=5), after(), zero)
    assert (counts.released, counts.suppressed, counts.late) == (1, 1, 0)
    [message] = published(store)
    assert message["cell"] == b and message["contributors"] == 5
    assert message["distance_km"] == pytest.approx(5 * 2.0)
    assert [r.cell for r in store.public_stats()] == [b]
    # the contributions are gone, the suppressed ones too; the hour is closed for good
    assert store.counts()["public_contributions"] == 0
    assert store.public_closed_before() == hour(1)
    # a fifth vehicle in cell a after the release is late: dropped and counted, never published
    fleet6.send(gws[4], hour(), cell(a))
    assert store.public_counters()["late"] == 1
    assert store.counts()["public_contributions"] == 0
    assert release(store, PublicConfig(k=5), after(3), zero).released == 0
    assert [m["cell"] for m in published(store)] == [b]


def test_k_minus_one_is_never_published_whatever_k(fleet6: Fleet) -> None:
    store = fleet6.store
    for n, k in enumerate((5, 6)):  # hour n: k - 1 vehicles in one cell, k in another
        for gw in fleet6.gateways[:k - 1]:
            fleet6.send(gw, hour(n), cell(CELLS[2]), cell(CELLS[3]))
        fleet6.send(fleet6.gateways[k - 1], hour(n), cell(CELLS[3]))
        counts = release(store, PublicConfig(k=k), after(n), zero)
        assert (counts.released, counts.suppressed) == (1, 1)
    assert {(r.hour, r.cell, r.contributors) for r in store.public_stats()} == {
        (hour(0), CELLS[3], 5), (hour(1), CELLS[3], 6)}


def test_each_device_is_clamped_to_the_bound(fleet6: Fleet) -> None:
    store, gws = fleet6.store, fleet6.gateways
    fleet6.send(gws[0], hour(), cell(CELLS[4], km=4.0, s=800.0, fuel=0.8))
    fleet6.send(gws[0], hour(), cell(CELLS[4], km=4.0, s=800.0, fuel=0.8))  # a second trip
    for gw in gws[1:5]:
        fleet6.send(gw, hour(), cell(CELLS[4], km=1.0, s=100.0, fuel=0.1))
    release(store, PublicConfig(k=5), after(), zero)
    [row] = store.public_stats()
    assert row.contributors == 5
    assert row.distance_km == pytest.approx(BOUNDS.distance_km + 4 * 1.0)
    assert row.duration_s == pytest.approx(BOUNDS.duration_s + 4 * 100.0)
    assert row.fuel_l == pytest.approx(BOUNDS.fuel_l + 4 * 0.1)
    assert row.co2_kg == pytest.approx(BOUNDS.co2_kg + 4 * 0.232)
    assert row.mean_speed_kmh == pytest.approx(9.0 / 1300.0 * 3600, abs=0.1)


def test_a_resent_stats_record_counts_once_and_the_chain_audits(
    fleet6: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, gw = fleet6.store, fleet6.gateways[0]
    trip_token = gw.sign(trip(), "trip")
    fleet6.ingestor.process([(rec_topic(gw.device), trip_token.encode())])
    token = fleet6.send(gw, hour(), cell(CELLS[5]))
    fleet6.ingestor.process([(rec_topic(gw.device), token.encode())])  # the gateway re-sends
    after_stats = gw.sign(trip(), "trip")  # chains on the stats record's hash
    fleet6.ingestor.process([(rec_topic(gw.device), after_stats.encode())])
    assert store.rejections() == {"duplicate": 1}
    assert store.chain_head(gw.device).seq == 3
    assert store.public_counters()["contributions"] == 1
    # the stats record is kept as its chain place only: no JWS, no body
    assert [seq for seq, _ in store.public_chain(gw.device)] == [2]
    assert len(store.chain_records(gw.device)) == 2
    code = cli.main(["audit", "--db", str(store.path), "--json"])
    assert code == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["verdict"] == "ok: seqs 1..3" and row["records"] == 2


def test_nothing_published_or_kept_names_a_device(
    store: SqliteStore, device_ca: DeviceCa, card_issuer: CardIssuer, tmp_path: Path
) -> None:
    fleet = Fleet(store, device_ca, card_issuer, 6)
    card = card_issuer.card()
    sessions = []
    for i, gw in enumerate(fleet.gateways):  # each vehicle also has a driver with a session
        session = f"s-{i:04d}-abcdef"
        start = card.session_start(gw, session)
        fleet.ingestor.process([(rec_topic(gw.device), gw.sign(start, "session.start",
                                                                session).encode())])  # fmt: skip
        sessions.append(session)
    for c in CELLS[:3]:
        fleet.all_send(hour(), cell(c))
    assert store.public_counters()["contributions"] == 18
    # before the release: contributions sit under keyed tags, never the device or its VIN
    rows = store._conn.execute("SELECT * FROM public_contributions").fetchall()
    assert len(rows) == 18 and len({r[2] for r in rows}) == 18  # unlinkable across cells
    release(store, PublicConfig(k=5), after())
    export = tmp_path / "stats.geojson"
    assert cli.main(["public", "export", "--format", "geojson", "--db", str(store.path),
                     "--out", str(export)]) == 0  # fmt: skip
    assert cli.main(["public", "export", "--format", "csv", "--db", str(store.path),
                     "--out", str(tmp_path / "stats.csv")]) == 0  # fmt: skip
    out = [p.payload for _, p in store.fanout_pending(10_000) if "public" in p.topic]
    assert len(out) == 3
    out += [export.read_bytes(), (tmp_path / "stats.csv").read_bytes()]
    persons = [p.id for p in store.persons()]
    assert persons  # the drivers are known to the registry...
    pseudonyms = [fleet_pseudonym(store.pseudonym_secret(), "acme", p) for p in persons]
    secret_words = [*(gw.device for gw in fleet.gateways), *(gw.vin for gw in fleet.gateways),
                    *sessions, *persons, *pseudonyms, *(r[2] for r in rows), "gw-", "JTVIN"]
    for payload in out:  # ...and none of it is in anything published
        for word in secret_words:
            assert word.encode() not in payload, word
    # after the release the contributions and their tags are gone, and no stats record's JWS
    # or signature is anywhere in the database's files
    assert store.counts()["public_contributions"] == 0
    files = b"".join(p.read_bytes() for p in tmp_path.glob("registry.db*") if p.is_file())
    for token in fleet.tokens:
        assert token.split(".")[2].encode() not in files
        assert token.split(".")[1][:40].encode() not in files
    for tag in {r[2] for r in rows}:
        assert tag.encode() not in files  # overwritten (secure_delete), the WAL truncated


def test_an_adversary_who_knows_every_other_contribution_learns_only_noise(
    store: SqliteStore, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    # Six vehicles in one cell, hour after hour; the adversary knows five of them exactly and
    # subtracts them from what is published. What is left of the sixth is its value plus
    # Laplace noise of the published scale, release after release.
    fleet = Fleet(store, device_ca, card_issuer, 6)
    config = PublicConfig(k=5)
    target, others = fleet.gateways[0], fleet.gateways[1:]
    trials = 150
    for n in range(trials):
        fleet.send(target, hour(n), cell(CELLS[6], km=3.0, s=300.0, fuel=0.3))
        for gw in others:
            fleet.send(gw, hour(n), cell(CELLS[6], km=1.0, s=100.0, fuel=0.1))
        assert release(store, config, after(n, config)).released == 1
    rows = store.public_stats()
    assert len(rows) == trials
    scale = scales(config.epsilon)
    checks = {"distance": (3.0, 5 * 1.0, "distance_km", 1000.0),
              "duration": (300.0, 5 * 100.0, "duration_s", 1.0),
              "fuel": (0.3, 5 * 0.1, "fuel_l", 1000.0),
              "contributors": (1, 5, "contributors", 1.0)}  # fmt: skip
    for name, (truth, known, column, unit) in checks.items():
        errors = [(getattr(r, column) - known - truth) * unit for r in rows]
        b = scale[name]
        # the adversary's error is Laplace(b): mean 0, mean |error| = b (standard error b/√150)
        assert statistics.fmean(abs(e) for e in errors) == pytest.approx(b, rel=0.3), name
        assert abs(statistics.fmean(errors)) < 0.5 * b, name
        # and their guess is rarely anywhere near the truth (within 10 %)
        near = sum(abs(e) <= 0.1 * truth * unit for e in errors) / trials
        assert near < 0.2, (name, near)
    # the noise really is drawn afresh each time: no two releases agree on the distance
    assert len({r.distance_km for r in rows}) > trials * 0.9


def test_co2_over_the_published_cells_is_the_sum_of_the_contributions_within_the_noise(
    store: SqliteStore, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    fleet = Fleet(store, device_ca, card_issuer, 7)
    expected = 0.0
    cells = CELLS[10:30]
    for i, c in enumerate(cells):
        for j, gw in enumerate(fleet.gateways[: 5 + i % 3]):
            fuel = 0.05 + 0.01 * ((i + j) % 9)
            fleet.send(gw, hour(), cell(c, km=1.5, fuel=fuel))
            expected += min(fuel * 2.32, BOUNDS.co2_kg)
    config = PublicConfig(k=5, epsilon=1.0)
    release(store, config, after(), OpenDpLaplace())
    rows = store.public_stats()
    assert {r.cell for r in rows} == set(cells)
    total = sum(r.co2_kg for r in rows)
    sigma = math.sqrt(len(rows) * 2) * scales(config.epsilon)["co2"] / 1000  # kg
    assert abs(total - expected) < 5 * sigma
    # and exactly the sum with the noise taken out (the same release path, zero noise)
    fleet2 = Fleet(SqliteStore(store.path.with_name("exact.db")), DeviceCa.open(
        store.path.parent / "ca2"), card_issuer, 7)  # fmt: skip
    for i, c in enumerate(cells):
        for j, gw in enumerate(fleet2.gateways[: 5 + i % 3]):
            fleet2.send(gw, hour(), cell(c, km=1.5, fuel=0.05 + 0.01 * ((i + j) % 9)))
    release(fleet2.store, config, after(), zero)
    exact = sum(r.co2_kg for r in fleet2.store.public_stats())
    fleet2.store.close()
    assert exact == pytest.approx(expected, abs=0.001 * len(cells))


def test_the_export_is_geojson_hexagons_and_csv_rows(fleet6: Fleet) -> None:
    store = fleet6.store
    fleet6.all_send(hour(), cell(CELLS[7]), cell(CELLS[8], km=3.0))
    release(store, PublicConfig(k=5), after(), zero)
    rows = store.public_stats()
    collection = json.loads(to_geojson(rows))
    assert collection["type"] == "FeatureCollection"
    by_cell = {f["properties"]["cell"]: f for f in collection["features"]}
    assert set(by_cell) == {CELLS[7], CELLS[8]}
    feature = by_cell[CELLS[8]]
    ring = feature["geometry"]["coordinates"][0]
    assert len(ring) == 7 and ring[0] == ring[-1]
    lat, lon = h3.cell_to_latlng(CELLS[8])
    assert min(p[0] for p in ring) < lon < max(p[0] for p in ring)  # [lon, lat] order
    assert min(p[1] for p in ring) < lat < max(p[1] for p in ring)
    area = sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring))
    assert area > 0  # counter-clockwise (RFC 7946)
    assert feature["properties"]["distance_km"] == pytest.approx(6 * 3.0)
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [(r["cell"], r["hour"], r["contributors"]) for r in table] == [
        (r.cell, r.hour, str(r.contributors)) for r in rows]


def test_release_command_refuses_a_low_k_and_releases_as_of_now(
    fleet6: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fleet6.store
    fleet6.all_send(hour(), cell(CELLS[9]))
    db = str(store.path)
    assert cli.main(["public", "release", "--k", "4", "--db", db]) == 2
    assert "below 5" in capsys.readouterr().err
    # before the grace period ends, nothing is due
    early = (HOUR + timedelta(hours=1, minutes=30)).isoformat()
    assert cli.main(["public", "release", "--k", "5", "--now", early, "--json", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out) == {"released": 0, "suppressed": 0, "late": 0}
    late = after().isoformat()
    assert cli.main(["public", "release", "--k", "5", "--now", late, "--json", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out) == {"released": 1, "suppressed": 0, "late": 0}
    assert cli.main(["public", "status", "--json", "--db", db]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["released"] == 1 and status["pending"] == 0
    assert status["contributions"] == 6 and status["closed_before"] == hour(1)


def test_a_version_3_database_gains_the_public_tables(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    SqliteStore(db).close()
    conn = sqlite3.connect(db)  # back to version 3: the layout before the public tier
    for table in ("public_chain", "public_contributions", "public_stats", "public_state",
                  "public_counters"):  # fmt: skip
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = SqliteStore(db)
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.public_counters() == {} and store.public_stats() == []
        assert store.counts()["public_contributions"] == 0
        without_rowid = store._conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'public_contributions'").fetchone()[0]
        assert "WITHOUT ROWID" in without_rowid
    finally:
        store.close()
