"""Trip figures: distance and odometer cross-check, fuel from fuel rate or MAF, CO2, night share."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from edge_agent import signals as sig
from edge_agent.samples import Sample
from edge_agent.scoring import ScoringConfig, Trip
from edge_agent.scoring.trip import night_share

from .streams import Stream, const, ramp, score


def trip_of(stream: Stream | list[Sample], config: ScoringConfig | None = None) -> Trip:
    [trip] = score(stream, config).trips
    return trip


def cruise(duration: float = 360.0, speed: float = 60.0) -> Stream:
    stream = Stream(duration)
    stream.add(sig.IGNITION, 0.1, const(True))
    stream.add(sig.SPEED, 0.1, const(speed))
    stream.add(sig.ENGINE_SPEED, 0.1, const(2000.0))
    return stream


def test_distance_integrates_speed_by_trapezoid() -> None:
    trip = trip_of(
        Stream(100).add(sig.IGNITION, 1, const(True)).add(sig.SPEED, 1, ramp((0, 0.0), (100, 72.0)))
    )
    assert trip.distance_km == pytest.approx(1.0)  # mean 10 m/s for 100 s
    assert trip.max_speed_kmh == 72.0
    assert trip.duration_s == 100.0


def test_gaps_in_the_data_are_not_integrated(caplog: pytest.LogCaptureFixture) -> None:
    stream = cruise(120)
    samples = [s for s in stream.samples() if not 30 <= s.timestamp - stream.start < 60]
    caplog.set_level(logging.INFO)
    trip = trip_of(samples)
    assert trip.distance_km == pytest.approx(60 / 3600 * 90, abs=0.01)
    assert "no data for 30.1 s" in caplog.text


def test_odometer_agrees(caplog: pytest.LogCaptureFixture) -> None:
    stream = cruise().add(sig.ODOMETER, 1.0, lambda t: 12_000 + 60 * t / 3600)
    trip = trip_of(stream)
    assert trip.odometer_km == pytest.approx(6.0)
    assert trip.odometer_mismatch is False
    assert "differ" not in caplog.text


def test_odometer_disagreeing_by_more_than_5_percent_is_flagged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = cruise().add(sig.ODOMETER, 1.0, lambda t: 12_000 + 1.06 * 60 * t / 3600)
    trip = trip_of(stream)
    assert trip.odometer_km == pytest.approx(6.36)
    assert trip.odometer_mismatch is True
    assert "differ by more than 5 %" in caplog.text


def test_odometer_running_backwards_is_rejected() -> None:
    stream = cruise().add(
        sig.ODOMETER, 1.0, lambda t: 12_000 + 60 * t / 3600 - (5 if 100 <= t < 110 else 0)
    )
    outcome = score(stream)
    assert outcome.scorer.rejected["odometer_backwards"] == 10
    assert outcome.trips[0].odometer_km == pytest.approx(6.0)


def test_fuel_from_fuel_rate_and_co2_by_fuel_type() -> None:
    stream = cruise().add(sig.FUEL_RATE, 0.1, const(10.0)).add(sig.MAF, 0.1, const(100.0))
    gasoline = trip_of(stream)
    assert gasoline.fuel_l == pytest.approx(1.0)  # 10 l/h for 6 min; the MAF is not used
    assert gasoline.co2_kg == pytest.approx(2.32)
    diesel = trip_of(stream, ScoringConfig.for_class("heavy_truck", fuel_type="diesel"))
    assert diesel.co2_kg == pytest.approx(2.58)


def test_fuel_from_maf_for_gasoline_only() -> None:
    stream = cruise().add(sig.MAF, 0.1, const(10.0))
    trip = trip_of(stream)
    assert trip.fuel_l == pytest.approx(10 * 3600 / (14.7 * 740) / 10)
    assert trip_of(stream, ScoringConfig(fuel_type="diesel")).fuel_l is None


def test_no_fuel_signal_means_no_fuel_figure() -> None:
    trip = trip_of(cruise())
    assert (trip.fuel_l, trip.co2_kg, trip.idle_fuel_l) == (None, None, None)
    body = trip.to_json()
    assert body["fuel_l"] is None and body["co2_kg"] is None


def jst(hour: float) -> float:
    return datetime(2026, 11, 26, 0, 0, tzinfo=UTC).timestamp() + (hour - 9) * 3600


@pytest.mark.parametrize(
    ("start", "end", "share"),
    [(10, 12, 0.0), (21, 23, 0.5), (23, 26, 1.0), (4, 6, 0.5), (20, 30, 0.7), (22, 22, 0.0)],
)
def test_night_share_is_22_to_5_local(start: float, end: float, share: float) -> None:
    assert night_share(jst(start), jst(end), ScoringConfig()) == pytest.approx(share)


def test_night_share_follows_the_configured_offset() -> None:
    utc = ScoringConfig(utc_offset_h=0.0)
    assert night_share(jst(7), jst(9), utc) == pytest.approx(1.0)  # 22:00-24:00 UTC


def test_trip_json_matches_the_contract() -> None:
    body = trip_of(cruise().add(sig.FUEL_RATE, 0.1, const(10.0))).to_json()
    assert list(body) == [
        "start",
        "end",
        "distance_km",
        "odometer_km",
        "duration_s",
        "max_speed_kmh",
        "fuel_l",
        "co2_kg",
        "idle_s",
        "night_share",
        "events",
        "penalty_points",
        "score",
    ]
    assert body["start"] == "2026-11-26T01:00:00.000Z" and body["end"] == "2026-11-26T01:06:00.000Z"
    assert body["events"] == {
        "harsh_braking": 0,
        "harsh_acceleration": 0,
        "harsh_cornering": 0,
        "speeding": 0,
        "idling": 0,
        "continuous_driving": 0,
        "pedal_misapplication": 0,
        "seatbelt": 0,
        "crash": 0,
    }
    assert (body["distance_km"], body["penalty_points"], body["score"]) == (6.0, 0.0, 100.0)
