"""Harsh braking, acceleration and cornering through the scorer, at and around thresholds."""

from __future__ import annotations

import math
import random

import pytest

from edge_agent import signals as sig
from edge_agent.scoring import ScoringConfig

from .streams import T0, Stream, car, const, ramp, score, steps

BRAKE_AT = 10.0  # seconds into the stream


def braking(level: float, length: float = 1.0, speed: float = 60.0) -> Stream:
    """Cruise at ``speed``, then a deceleration plateau of ``level`` for ``length`` s."""
    stop = BRAKE_AT + length
    end_speed = max(0.0, speed - level * length * 3.6)
    return car(
        20.0,
        ramp((BRAKE_AT, speed), (stop, end_speed)),
        accel=steps((0.0, 0.0), (BRAKE_AT, -level), (stop, 0.0)),
    )


@pytest.mark.parametrize(("level", "expected"), [(3.45, 0), (3.5, 1), (3.55, 1), (6.0, 1)])
def test_harsh_braking_threshold_for_a_car(level: float, expected: int) -> None:
    events = score(braking(level)).of("harsh_braking")
    assert len(events) == expected
    if expected:
        # The smoothed value reaches the level once the 0.3 s window is full of it.
        assert BRAKE_AT <= events[0].start - T0 <= BRAKE_AT + 0.31
        assert events[0].peak == pytest.approx(level)
        braked_s = events[0].start - T0 - BRAKE_AT
        assert events[0].speed_kmh == pytest.approx(60.0 - level * 3.6 * braked_s, abs=0.2)


def test_harsh_braking_must_last_its_sustain_time_after_smoothing() -> None:
    # 0.5 s at 4 m/s^2: the 0.3 s average stays above 3.5 for only ~0.2 s.
    assert score(braking(4.0, length=0.5)).of("harsh_braking") == []
    assert len(score(braking(4.0, length=0.7)).of("harsh_braking")) == 1


def test_harsh_braking_needs_10_kmh_at_start() -> None:
    assert score(braking(5.0, length=0.5, speed=9.0)).of("harsh_braking") == []
    assert len(score(braking(5.0, length=0.5, speed=16.0)).of("harsh_braking")) == 1


def test_vehicle_class_sets_the_threshold() -> None:
    assert score(braking(3.1), ScoringConfig.for_class("car")).of("harsh_braking") == []
    truck = score(braking(3.1), ScoringConfig.for_class("heavy_truck")).of("harsh_braking")
    assert len(truck) == 1


def test_a_long_braking_is_one_event() -> None:
    events = score(braking(4.0, length=5.0, speed=90.0)).of("harsh_braking")
    assert len(events) == 1
    # Measured on the smoothed value: from its crossing to its release, ~0.2 s shorter.
    assert events[0].duration_s == pytest.approx(5.0, abs=0.3)


def test_a_wavering_braking_is_one_event() -> None:
    # 4.5 m/s^2 with a 2 Hz wobble of +-1.2: dips below the threshold, never below release.
    def wobble(t):
        return -(4.5 + 1.2 * math.sin(2 * math.pi * 2 * t)) if 10 <= t < 14 else 0.0
    stream = car(20, ramp((10, 90.0), (14, 25.0)), accel=wobble)
    assert len(score(stream).of("harsh_braking")) == 1


def test_imu_spikes_on_a_calm_road_do_not_fire() -> None:
    rng = random.Random(4)
    spikes = {round(rng.uniform(1, 59), 2) for _ in range(40)}

    def imu(t: float) -> float:
        return rng.gauss(0, 0.08) + (
            rng.choice((-1, 1)) * 0.45 * 9.81 if round(t, 2) in spikes else 0
        )

    stream = car(60, const(80.0), accel=imu).add(sig.ACCEL_LAT, 0.01, imu)
    outcome = score(stream)
    assert outcome.events == []
    assert outcome.trips[0].score == 100.0


def test_harsh_acceleration_threshold() -> None:
    def launch(level: float) -> Stream:
        return car(
            10, ramp((2, 0.0), (4, level * 2 * 3.6)), accel=steps((0, 0.0), (2, level), (4, 0.0))
        )

    assert score(launch(3.45)).of("harsh_acceleration") == []
    events = score(launch(3.6)).of("harsh_acceleration")
    assert len(events) == 1 and 2.0 <= events[0].start - T0 <= 2.31
    assert (
        len(score(launch(3.0), ScoringConfig.for_class("heavy_truck")).of("harsh_acceleration"))
        == 1
    )


def test_braking_derived_from_speed_without_an_accelerometer() -> None:
    def obd_only(level: float) -> Stream:
        stream = Stream(20)
        stream.add(sig.IGNITION, 1.0, const(True))
        stream.add(sig.SPEED, 1.0, ramp((5, 80.0), (10, 80.0 - level * 5 * 3.6)))
        return stream

    events = score(obd_only(4.0)).of("harsh_braking")
    assert len(events) == 1 and 5.0 <= events[0].start - T0 <= 6.01
    assert events[0].peak == pytest.approx(4.0, abs=0.01)
    assert score(obd_only(3.0)).of("harsh_braking") == []


def corner(lateral: float, speed: float, *, yaw_only: bool = False) -> Stream:
    stream = car(12, const(speed))
    profile = steps((0, 0.0), (4, lateral), (7, 0.0))
    if yaw_only:
        del stream.signals[sig.ACCEL_LAT]
        v = speed / 3.6
        stream.add(sig.YAW_RATE, 0.01, lambda t: math.degrees(float(profile(t)) / v))
    else:
        stream.add(sig.ACCEL_LAT, 0.01, profile)
    return stream


def test_harsh_cornering_threshold_either_side() -> None:
    assert score(corner(3.95, 40)).of("harsh_cornering") == []
    left = score(corner(4.0, 40)).of("harsh_cornering")
    right = score(corner(-4.5, 40)).of("harsh_cornering")
    assert len(left) == 1 and len(right) == 1
    assert right[0].peak == pytest.approx(4.5)
    assert right[0].duration_s == pytest.approx(3.0, abs=0.3)


def test_harsh_cornering_needs_20_kmh() -> None:
    assert score(corner(5.0, 18)).of("harsh_cornering") == []


def test_cornering_from_yaw_rate_times_speed() -> None:
    assert len(score(corner(4.6, 50, yaw_only=True)).of("harsh_cornering")) == 1
    assert score(corner(3.6, 50, yaw_only=True)).of("harsh_cornering") == []
