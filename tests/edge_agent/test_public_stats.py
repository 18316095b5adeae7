"""Contributions to public statistics at the edge: per H3 cell and UTC hour, from the trip's own
samples, adding up to the trip; only with the driver's ``public`` consent; no session id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import h3
import pytest

from edge_agent import later_consents
from edge_agent import signals as sig
from edge_agent.identity.binding import (
    BindingStatement,
    Consent,
    LicenceClaim,
    SessionStartBody,
    iso_utc,
)
from edge_agent.identity.session import DriverSession
from edge_agent.outbox import NewRecord, Outbox
from edge_agent.public_stats import PublicStats
from edge_agent.replay import Replay
from edge_agent.samples import Sample
from edge_agent.scoring import Scorer, ScoringConfig, Trip
from edge_agent.simulate import simulate
from edge_agent.writer import RecordWriter
from msp_protocol import bodies
from msp_protocol.consent import GRANT, REVOKE
from msp_protocol.jws import Signer, b64url, split
from msp_protocol.records import parse_record, parse_ts
from tests.conftest import DEMO_MAP
from tests.protocol_data import VIN

#: 01:55 UTC: a ten-minute drive crosses into the next hour.
START = datetime(2026, 11, 26, 1, 55, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trip, list[bodies.Stats], set[str]]:
    """A simulated highway drive replayed through the decoder and the scorer, contributions
    beside it; also the H3 cells of every position the bus carried during the trip."""
    out = tmp_path_factory.mktemp("drive") / "drive.log"
    simulate(out, scenario="highway", seed=3, duration=600.0, background=False,
             start_epoch=START)  # fmt: skip
    scorer = Scorer(ScoringConfig())
    public = PublicStats(scorer.config)
    made: list[bodies.Stats] = []
    trips: list[Trip] = []
    lat: float | None = None
    cells: set[str] = set()
    for sample in Replay(out, DEMO_MAP).samples():
        scorer.feed(sample)
        public.feed(sample, scorer.state, scorer.in_trip)
        if sample.name == sig.LATITUDE:
            lat = float(sample.value)
        elif sample.name == sig.LONGITUDE and lat is not None and scorer.in_trip:
            cells.add(h3.latlng_to_cell(lat, float(sample.value), 7))
        for trip in scorer.pop_trips():
            trips.append(trip)
            made += public.trip_ended(trip)
    for trip in scorer.finish():
        trips.append(trip)
        made += public.trip_ended(trip)
    [trip] = trips
    return trip, made, cells


def test_contributions_add_up_to_the_trip_by_cell_and_hour(
    drive: tuple[Trip, list[bodies.Stats], set[str]],
) -> None:
    trip, made, cells = drive
    assert [b.hour for b in made] == ["2026-11-26T01:00:00Z", "2026-11-26T02:00:00Z"]
    entries = [c for b in made for c in b.cells]
    assert len(entries) > 3  # a highway drive crosses several cells of ~2.6 km across
    # the cells are those of the positions the vehicle reported, at resolution 7
    assert {c.cell for c in entries} <= cells
    assert all(h3.get_resolution(c.cell) == 7 for c in entries)
    distance = sum(c.distance_km for c in entries)
    assert trip.distance_km > 5
    # all of the trip but the first seconds before the first position fix
    assert distance == pytest.approx(trip.distance_km, rel=0.01)
    assert trip.fuel_l is not None and trip.fuel_l > 0
    fuel = sum(c.fuel_l or 0.0 for c in entries)
    assert fuel == pytest.approx(trip.fuel_l, rel=0.01)
    for c in entries:
        assert c.fuel_l is not None and c.co2_kg == pytest.approx(c.fuel_l * 2.32, abs=1e-3)
        assert 0 <= c.duration_s <= 3600
        if c.duration_s > 0:
            assert c.mean_speed_kmh == pytest.approx(c.distance_km / c.duration_s * 3600, rel=0.01)
    time = sum(c.duration_s for c in entries)
    assert time == pytest.approx(trip.end - trip.start, rel=0.05)
    # the hour boundary splits the drive where the clock passed 02:00
    before = sum(c.distance_km for c in made[0].cells)
    assert 0 < before < distance


def test_the_records_carry_no_position(
    drive: tuple[Trip, list[bodies.Stats], set[str]], tmp_path: Path, ed_signer: Signer
) -> None:
    _trip, made, _cells = drive
    outbox = Outbox.open(tmp_path / "outbox.db", ed_signer, VIN)
    try:
        outbox.append_many([NewRecord(body, START + 600, None) for body in made])
        stored = outbox.pending(10)
    finally:
        outbox.close()
    assert [r.kind for r in stored] == ["stats", "stats"]
    for row in stored:
        payload = split(row.jws).payload
        record = parse_record(payload)
        assert record.session is None
        text = payload.decode()
        # no coordinate: the simulated drive starts near 35.6 N 139.7 E
        assert "35.6" not in text and "139." not in text and "lat" not in text


def _session(consents: tuple[Consent, ...]) -> DriverSession:
    now = datetime.fromtimestamp(START, UTC)
    statement = BindingStatement(
        session="s-public", vin=VIN, device="gw-0001", started_at=iso_utc(now),
        nonce="AAECAwQFBgcICQoLDA0ODw", vehicle_class="car",
        licence=LicenceClaim(date(2030, 1, 31), ("普通",)), consents=consents,
    )  # fmt: skip
    der = b"not a real certificate: the writer does not verify"
    body = SessionStartBody(statement, b"\x01" * 256, der, hashlib.sha256(der).digest())
    return DriverSession(body, now)


def _drive_with(tmp_path: Path, signer: Signer, consents: tuple[Consent, ...],
                bodies_out: list[bodies.Body] | None = None,
                later: tuple[Consent, ...] | None = None,
                midway: Callable[[RecordWriter, Outbox, float], None] | None = None,
                ) -> list[str]:  # fmt: skip
    """The kinds and sessions of the records a writer appends for a short drive (60 s at
    50 km/h burning 6 l/h, heading north from the centre of the cell of 35.68 N 139.76 E)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    outbox = Outbox.open(tmp_path / "outbox.db", signer, VIN)
    try:
        scorer = Scorer(ScoringConfig())
        writer = RecordWriter(outbox, scorer.config)
        writer.session_started(_session(consents))
        t = START
        for i in range(600):  # 60 s at 50 km/h heading north, a fix each second
            t = START + i * 0.1
            for sample in (Sample(sig.SPEED, 50.0, t), Sample(sig.FUEL_RATE, 6.0, t)):
                scorer.feed(sample)
                if writer.public is not None:
                    writer.public.feed(sample, scorer.state, scorer.in_trip)
            if i % 10 == 0:
                for name, value in ((sig.LATITUDE, 35.6692 + i * 1e-5), (sig.LONGITUDE, 139.7586)):
                    sample = Sample(name, value, t)
                    scorer.feed(sample)
            if i == 300 and later is not None:  # half way: a grant or a revocation
                writer.consents_changed(later, datetime.fromtimestamp(t, UTC))
            if i == 300 and midway is not None:
                midway(writer, outbox, t)
        writer.trips(scorer.finish(t))
        records = [parse_record(split(r.jws).payload) for r in outbox.pending(20)]
        if bodies_out is not None:
            bodies_out += [r.body for r in records]
        return [f"{r.kind}:{r.session}" for r in records]
    finally:
        outbox.close()


def test_without_the_public_consent_no_stats_record_is_written(
    tmp_path: Path, ed_signer: Signer
) -> None:
    until = iso_utc(datetime.fromtimestamp(START, UTC) + timedelta(days=30))
    kinds = _drive_with(tmp_path, ed_signer, (Consent("acme", ("driving",), until),))
    assert kinds == ["session.start:s-public", "trip:s-public"]


def test_with_the_public_consent_a_stats_record_without_session_follows_the_trip(
    tmp_path: Path, ed_signer: Signer
) -> None:
    until = iso_utc(datetime.fromtimestamp(START, UTC) + timedelta(days=30))
    consents = (Consent("acme", ("driving",), until), Consent("public", ("public",), until))
    made: list[bodies.Body] = []
    kinds = _drive_with(tmp_path, ed_signer, consents, made)
    assert kinds == ["session.start:s-public", "trip:s-public", "stats:None"]
    stats, trip = made[2], made[1]
    assert isinstance(stats, bodies.Stats) and isinstance(trip, bodies.Trip)
    assert stats.hour == "2026-11-26T01:00:00Z"
    [cell] = stats.cells  # 590 m north of its centre: still in the one cell
    assert cell.cell == h3.latlng_to_cell(35.68, 139.76, 7)
    assert cell.distance_km == pytest.approx(50.0 * 59.9 / 3600, rel=1e-3) == trip.distance_km
    assert cell.duration_s == pytest.approx(59.9)
    assert cell.mean_speed_kmh == pytest.approx(50.0)
    assert cell.fuel_l == pytest.approx(6.0 * 59.9 / 3600, rel=1e-3)
    assert cell.co2_kg == pytest.approx(cell.fuel_l * 2.32, rel=1e-3)


def test_an_expired_public_consent_sends_nothing(tmp_path: Path, ed_signer: Signer) -> None:
    # valid at login, ended before the trip did: the trip's contributions are dropped
    until = iso_utc(datetime.fromtimestamp(START + 30, UTC))
    kinds = _drive_with(tmp_path, ed_signer, (Consent("public", ("public",), until),))
    assert kinds == ["session.start:s-public", "trip:s-public"]
    assert parse_ts(until).timestamp() < START + 60


def test_a_revocation_mid_trip_sends_nothing_and_a_grant_starts_contributing(
    tmp_path: Path, ed_signer: Signer
) -> None:
    until = iso_utc(datetime.fromtimestamp(START, UTC) + timedelta(days=30))
    public, driving = Consent("public", ("public",), until), Consent("acme", ("driving",), until)
    kinds = _drive_with(tmp_path / "revoked", ed_signer, (public,), later=(driving,))
    assert kinds == ["session.start:s-public", "trip:s-public"]
    made: list[bodies.Body] = []
    kinds = _drive_with(tmp_path / "granted", ed_signer, (driving,), made, later=(public,))
    assert kinds == ["session.start:s-public", "trip:s-public", "stats:None"]
    stats = made[2]
    assert isinstance(stats, bodies.Stats)
    # only what was driven after the grant: the second half of the minute
    assert stats.cells[0].distance_km == pytest.approx(50.0 * 29.9 / 3600, rel=0.01)


def _signed_later(action: str, categories: tuple[str, ...], until: str | None
                  ) -> Callable[[RecordWriter, Outbox, float], None]:  # fmt: skip
    """Half way: ``msp-agent card consent grant|revoke`` in another process, as it leaves the
    statement beside the outbox, and the agent's next tick."""

    def act(writer: RecordWriter, outbox: Outbox, t: float) -> None:
        assert outbox.path is not None
        statement = bodies.ConsentStatement(action, "public", categories, until, "gw-0001", VIN,
                                            iso_utc(datetime.fromtimestamp(t, UTC)),
                                            "AAECAwQFBgcICQoLDA0ODw")  # fmt: skip
        other_card = b64url(hashlib.sha256(b"another card").digest())
        later_consents.add(later_consents.beside(outbox.path), other_card,
                           bodies.ConsentStatement(GRANT, "public", ("public",), until or "x",
                                                   "gw-0001", VIN, statement.signed_at,
                                                   statement.nonce))  # fmt: skip
        later_consents.add(later_consents.beside(outbox.path), _CARD, statement)
        writer.refresh_consents(datetime.fromtimestamp(t, UTC), force=True)

    return act


_CARD = b64url(hashlib.sha256(b"not a real certificate: the writer does not verify").digest())


def test_a_revocation_signed_at_the_card_in_another_process_stops_the_contributions(
    tmp_path: Path, ed_signer: Signer
) -> None:
    until = iso_utc(datetime.fromtimestamp(START, UTC) + timedelta(days=30))
    public = Consent("public", ("public",), until)
    assert _drive_with(tmp_path / "kept", ed_signer, (public,)) == [
        "session.start:s-public", "trip:s-public", "stats:None"]
    for categories in (("public",), ()):  # the category named, or every category
        kinds = _drive_with(tmp_path / f"revoked{len(categories)}", ed_signer, (public,),
                            midway=_signed_later(REVOKE, categories, None))  # fmt: skip
        assert kinds == ["session.start:s-public", "trip:s-public"]
    # another recipient's revocation leaves the public tier alone
    kinds = _drive_with(tmp_path / "other", ed_signer, (public,),
                        midway=_signed_later(REVOKE, ("driving",), None))  # fmt: skip
    assert kinds[-1] == "stats:None"


def test_a_grant_signed_later_contributes_only_what_follows_it(
    tmp_path: Path, ed_signer: Signer
) -> None:
    until = iso_utc(datetime.fromtimestamp(START, UTC) + timedelta(days=30))
    driving = Consent("acme", ("driving",), until)
    made: list[bodies.Body] = []
    kinds = _drive_with(tmp_path, ed_signer, (driving,), made,
                        midway=_signed_later(GRANT, ("public",), until))  # fmt: skip
    assert kinds == ["session.start:s-public", "trip:s-public", "stats:None"]
    stats = made[2]
    assert isinstance(stats, bodies.Stats)
    assert stats.cells[0].distance_km == pytest.approx(50.0 * 29.9 / 3600, rel=0.01)
