"""The scoring stage end to end: trip boundaries, bad input, and the score's properties."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import signals as sig
from edge_agent.samples import Sample
from edge_agent.scoring import Scorer

from .streams import T0, Stream, car, const, ramp, score, steps


def test_ignition_bounds_trips_and_periodic_ignition_frames_do_not_restart_one() -> None:
    stream = Stream(200)
    stream.add(
        sig.IGNITION, 0.1, steps((0, False), (10, True), (80, False), (120, True), (190, False))
    )
    stream.add(sig.SPEED, 0.1, steps((0, 0.0), (15, 50.0), (75, 0.0), (125, 40.0), (185, 0.0)))
    trips = score(stream).trips
    assert [(t.start - T0, t.end - T0) for t in trips] == [(10.0, 80.0), (120.0, 190.0)]


def test_without_ignition_a_trip_starts_at_first_motion_and_ends_after_5_min_stopped() -> None:
    stream = Stream(1000).add(
        sig.SPEED, 1.0, steps((0, 0.0), (20, 50.0), (100, 0.0), (700, 30.0), (760, 0.0))
    )
    trips = score(stream).trips
    # The first trip ends where its 5-minute stop began; the second at the end of data
    # (a stop of 240 s is not long enough to end it).
    assert [(t.start - T0, t.end - T0) for t in trips] == [(20.0, 100.0), (700.0, 1000.0)]


def test_engine_running_while_stopped_keeps_the_trip_open() -> None:
    stream = Stream(700)
    stream.add(sig.SPEED, 1.0, steps((0, 0.0), (20, 50.0), (100, 0.0), (650, 30.0)))
    stream.add(sig.ENGINE_SPEED, 1.0, const(800.0))
    trips = score(stream).trips
    assert len(trips) == 1 and trips[0].idle_s == pytest.approx(550.0)


def test_motion_with_ignition_known_off_is_not_a_trip() -> None:
    stream = Stream(60).add(sig.IGNITION, 0.1, const(False)).add(sig.SPEED, 0.1, const(20.0))
    assert score(stream).trips == []


def test_events_open_at_ignition_off_close_into_that_trip() -> None:
    stream = car(40, const(80.0), period=0.1).add(sig.SPEED_LIMIT, 0.1, const(50.0))
    stream.add(sig.IGNITION, 0.1, steps((0, True), (30, False)))
    outcome = score(stream)
    [trip] = outcome.trips
    assert [e.type for e in trip.events] == ["speeding"]
    assert trip.events[0].end == pytest.approx(T0 + 30)
    assert [e.type for e in outcome.fed] == ["speeding"]  # returned by feed at ignition off


BAD = [
    (Sample(sig.SPEED, math.nan, T0 + 5.05), "bad_value"),
    (Sample(sig.SPEED, math.inf, T0 + 5.06), "bad_value"),
    (Sample(sig.SPEED, -60.0, T0 + 5.07), "implausible"),
    (Sample(sig.SPEED, 1e6, T0 + 5.08), "implausible"),
    (Sample(sig.ACCEL_PEDAL, 130.0, T0 + 5.09), "implausible"),
    (Sample(sig.SPEED, True, T0 + 5.091), "bad_value"),
    (Sample(sig.SPEED, 50.0, math.nan), "bad_timestamp"),
    (Sample(sig.SPEED, 50.0, T0 + 1.0), "out_of_order"),
    (Sample(sig.BELTED, math.nan, T0 + 5.095), "bad_value"),
]


@pytest.mark.parametrize(
    ("bad", "reason"), BAD, ids=[reason + str(i) for i, (_, reason) in enumerate(BAD)]
)
def test_bad_samples_are_counted_logged_and_do_not_disturb(
    bad: Sample, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = car(10, const(60.0), period=0.1).samples()
    at = next(i for i, s in enumerate(good) if s.timestamp > T0 + 5)
    outcome = score([*good[:at], bad, *good[at:]])
    assert outcome.scorer.rejected == {reason: 1}
    assert f"rejected sample {bad.name}" in caplog.text and reason in caplog.text
    [trip] = outcome.trips
    assert trip.distance_km == pytest.approx(60 * 10 / 3600)
    assert trip.max_speed_kmh == 60.0


def test_repeated_rejections_log_once_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    scorer = Scorer()
    for n in range(5):
        scorer.feed(Sample(sig.SPEED, -100.0, T0 + n))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and scorer.rejected["implausible"] == 5


def test_unknown_signals_are_ignored_not_rejected() -> None:
    scorer = Scorer()
    assert scorer.feed(Sample("Vehicle.Cabin.Light", 1.0, T0)) == []
    assert scorer.ignored == 1 and not scorer.rejected


@settings(max_examples=25, deadline=None)
@given(
    speed=st.floats(min_value=1.0, max_value=250.0),
    imu_hz=st.sampled_from([10, 50]),
    limit_margin=st.floats(min_value=0.0, max_value=10.0),
)
def test_steady_cruising_yields_no_events_and_a_full_score(
    speed: float, imu_hz: int, limit_margin: float
) -> None:
    duration = min(150.0, max(30.0, 1.1 * 3600 / speed))  # 1.1 km when the speed allows
    stream = car(duration, const(speed), period=1 / imu_hz)
    stream.add(sig.SPEED_LIMIT, 1.0, const(max(1.0, speed - limit_margin)))
    outcome = score(stream)
    [trip] = outcome.trips
    assert outcome.events == [] and outcome.fed == []
    # The stream's last speed sample may fall up to one period (0.1 s) before ``duration``.
    assert trip.distance_km == pytest.approx(speed * duration / 3600, abs=speed * 0.1 / 3600)
    assert trip.score == (100.0 if trip.distance_km >= 1.0 else None)


@settings(max_examples=15, deadline=None)
@given(
    distance_speed=st.floats(min_value=45.0, max_value=105.0),
    level=st.floats(min_value=3.6, max_value=9.0),
)
def test_adding_a_harsh_braking_never_raises_the_score(distance_speed: float, level: float) -> None:
    calm = car(120, const(distance_speed), period=0.02)
    slowed = distance_speed - level * 3.6
    harsh = car(120, ramp((40, distance_speed), (41, slowed), (51, distance_speed)), period=0.02)
    harsh.add(sig.ACCEL_LON, 0.02, steps((0, 0.0), (40, -level), (41, 0.0)))
    calm_trip, harsh_trip = score(calm).trips[0], score(harsh).trips[0]
    assert len(score(harsh).of("harsh_braking")) == 1
    assert calm_trip.score == 100.0
    assert harsh_trip.score is not None and harsh_trip.score < calm_trip.score


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.booleans(),
    st.floats(min_value=0, max_value=120),
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*sig.CANONICAL, "Vehicle.Unknown"]),
            values,
            st.floats(min_value=-5, max_value=600, allow_nan=False),
        ),
        max_size=300,
    ),
    st.booleans(),
)
def test_any_sample_stream_is_scored_without_raising(
    raw: list[tuple[str, float | bool, float]], ordered: bool
) -> None:
    if ordered:
        raw = sorted(raw, key=lambda item: item[2])
    scorer = Scorer()
    for name, value, offset in raw:
        scorer.feed(Sample(name, value, T0 + offset))
    trips = scorer.finish()
    handled = scorer.ignored + sum(scorer.rejected.values())
    assert handled <= len(raw)
    for trip in trips:
        assert trip.end >= trip.start
        assert trip.distance_km >= 0 and 0.0 <= trip.night_share <= 1.0
        score = trip.score
        assert score is None or 0.0 <= score <= 100.0
        for event in trip.events:
            assert event.duration_s >= 0 and event.points >= 0
