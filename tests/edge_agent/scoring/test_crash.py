"""Crash: raised on the very sample that shows it; one collision is one event."""

from __future__ import annotations

import pytest

from edge_agent import signals as sig
from edge_agent.samples import Sample
from edge_agent.scoring import Scorer

from .streams import T0, Stream, car, const, score, steps


def feed_until_crash(stream: Stream) -> tuple[Sample, list[str]]:
    """Feed until a crash comes back; return the sample that raised it and what came back."""
    scorer = Scorer()
    for sample in stream.samples():
        events = scorer.feed(sample)
        if any(e.type == "crash" for e in events):
            return sample, [e.type for e in events]
    raise AssertionError("no crash raised")


def test_crash_flag_raises_at_once() -> None:
    stream = car(20, const(40.0)).add(sig.CRASH, 0.1, steps((0, False), (10, True)))
    sample, types = feed_until_crash(stream)
    assert (sample.name, sample.timestamp - T0, types) == (
        sig.CRASH,
        pytest.approx(10.0),
        ["crash"],
    )
    [crash] = score(stream).events
    assert (crash.trigger, crash.speed_kmh, crash.duration_s) == ("crash_flag", 40.0, 0.0)


def test_horizontal_shock_of_2_5_g_raises_at_once() -> None:
    shock = steps((0, 0.0), (10, -20.0), (10.01, 0.0))
    stream = car(20, const(40.0), accel=shock).add(
        sig.ACCEL_LAT, 0.01, steps((0, 0.0), (10, 15.0), (10.01, 0.0))
    )
    sample, _ = feed_until_crash(stream)  # hypot(20, 15) = 25 m/s^2 >= 24.5
    assert sample.timestamp - T0 == pytest.approx(10.0)
    [crash] = [e for e in score(stream).events if e.type == "crash"]
    assert crash.peak == pytest.approx(25.0) and crash.severity == "critical"
    assert crash.trigger == "deceleration"


def test_shock_just_below_2_5_g_is_not_a_crash() -> None:
    stream = car(20, const(40.0), accel=steps((0, 0.0), (10, -24.0), (10.01, 0.0)))
    assert [e for e in score(stream).events if e.type == "crash"] == []


def test_speed_drop_of_8_kmh_within_150_ms() -> None:
    crash = car(20, steps((0, 40.0), (10.1, 31.0)), period=0.02)
    [event] = [e for e in score(crash).events if e.type == "crash"]
    assert event.speed_kmh == pytest.approx(40.0)
    assert event.start - T0 == pytest.approx(10.1)
    gentle = car(20, steps((0, 40.0), (10.1, 33.0)), period=0.02)
    assert [e for e in score(gentle).events if e.type == "crash"] == []


def test_one_collision_is_one_crash_and_no_harsh_braking() -> None:
    # Airbag flag, a 9 g pulse and the speed falling from 40 to 0 in 0.12 s: all one crash.
    pulse = steps((0, 0.0), (10, -92.0), (10.12, 0.0))
    stream = car(20, steps((0, 40.0), (10.04, 27.0), (10.08, 13.0), (10.12, 0.0)), accel=pulse)
    stream.add(sig.CRASH, 0.1, steps((0, False), (10.1, True)))
    outcome = score(stream)
    assert [e.type for e in outcome.events] == ["crash"]
    assert outcome.events[0].start - T0 == pytest.approx(10.0)


def test_crash_while_parked_is_still_raised() -> None:
    stream = (
        Stream(20)
        .add(sig.IGNITION, 0.1, const(False))
        .add(sig.CRASH, 0.1, steps((0, False), (5, True)))
    )
    outcome = score(stream)
    assert outcome.trips == []
    assert [e.type for e in outcome.fed] == ["crash"]
