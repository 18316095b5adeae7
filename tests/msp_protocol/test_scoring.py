"""Penalty points, trip score and the cross-vehicle person score."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.scoring import (
    EVENT_TYPES,
    TripTotals,
    decay_weight,
    event_points,
    person_score,
    trip_score,
)

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "severity", "duration_s", "points"),
    [
        ("harsh_braking", "major", 2.0, 5),
        ("harsh_acceleration", "minor", 1.0, 4),
        ("harsh_cornering", "critical", 1.0, 4),
        ("pedal_misapplication", "critical", 1.0, 15),
        ("seatbelt", "major", 600.0, 10),
        ("idling", "minor", 900.0, 0),
        ("crash", "critical", 0.0, 0),
        ("speeding", "minor", 10.0, 3),
        ("speeding", "minor", 60.0, 3),
        ("speeding", "minor", 60.5, 6),
        ("speeding", "major", 5.0, 8),
        ("speeding", "critical", 130.0, 24),
        ("continuous_driving", "major", 0.0, 10),
        ("continuous_driving", "major", 1800.0, 10),
        ("continuous_driving", "major", 1801.0, 20),
    ],
)
def test_event_points(kind: str, severity: str, duration_s: float, points: float) -> None:
    assert event_points(kind, severity, duration_s) == points


def test_event_points_reject_unknown_input() -> None:
    with pytest.raises(ValueError, match="unknown event type 'drifting'"):
        event_points("drifting", "minor", 1.0)
    with pytest.raises(ValueError, match="unknown severity 'huge'"):
        event_points("speeding", "huge", 1.0)
    with pytest.raises(ValueError, match="duration_s"):
        event_points("speeding", "minor", -1.0)


def test_trip_score_formula() -> None:
    assert trip_score(0.0, 0.99) is None
    assert trip_score(0.0, 1.0) == 100.0
    assert trip_score(5.0, 2.0) == 75.0  # short trips count as 20 km
    assert trip_score(5.0, 50.0) == 90.0  # 10 points per 100 km
    assert trip_score(500.0, 50.0) == 0.0
    with pytest.raises(ValueError, match="distance_km"):
        trip_score(0.0, math.nan)
    with pytest.raises(ValueError, match="penalty_points"):
        trip_score(-1.0, 10.0)


def test_person_score_pools_km_and_points_across_vehicles() -> None:
    car = TripTotals(NOW, 80.0, 4.0)
    truck = TripTotals(NOW, 120.0, 16.0)
    assert person_score([car, truck], NOW) == pytest.approx(100 - 100 * 20 / 200)


def test_person_score_decays_old_trips() -> None:
    old_bad = TripTotals(NOW - timedelta(days=180), 100.0, 50.0)
    recent_good = TripTotals(NOW, 100.0, 0.0)
    w = math.exp(-2)
    expected = 100 - 100 * (w * 50) / (w * 100 + 100)
    assert person_score([old_bad, recent_good], NOW) == pytest.approx(expected)
    assert decay_weight(NOW - timedelta(days=90), NOW) == pytest.approx(math.exp(-1))
    assert decay_weight(NOW + timedelta(days=1), NOW) == 1.0


def test_person_score_needs_enough_driving() -> None:
    assert person_score([], NOW) is None
    assert person_score([TripTotals(NOW, 19.0, 0.0)], NOW) is None
    assert person_score([TripTotals(NOW, 19.0, 0.0)], NOW, min_km=10) == 100.0


trips = st.lists(
    st.builds(
        TripTotals,
        ended=st.datetimes(
            min_value=datetime(2025, 1, 1), max_value=datetime(2026, 11, 26), timezones=st.just(UTC)
        ),
        distance_km=st.floats(min_value=0, max_value=1000),
        penalty_points=st.floats(min_value=0, max_value=500),
    ),
    max_size=20,
)


@settings(max_examples=80)
@given(trips, st.integers(min_value=0, max_value=20), st.floats(min_value=0.1, max_value=100))
def test_adding_points_never_raises_a_person_score(
    history: list[TripTotals], which: int, extra: float
) -> None:
    before = person_score(history, NOW)
    if before is None:
        return
    i = which % len(history)
    worse = [*history]
    worse[i] = TripTotals(
        history[i].ended, history[i].distance_km, history[i].penalty_points + extra
    )
    after = person_score(worse, NOW)
    assert after is not None and after <= before
    assert 0.0 <= after <= 100.0


@settings(max_examples=80)
@given(
    st.floats(min_value=0, max_value=1000),
    st.floats(min_value=0, max_value=2000),
    st.floats(min_value=0.1, max_value=100),
)
def test_adding_an_event_never_raises_a_trip_score(points: float, km: float, extra: float) -> None:
    before, after = trip_score(points, km), trip_score(points + extra, km)
    if before is None:
        assert after is None
    else:
        assert after is not None and after <= before and 0.0 <= after <= 100.0


def test_every_event_type_has_points() -> None:
    for kind in EVENT_TYPES:
        assert event_points(kind, "minor", 1.0) >= 0
