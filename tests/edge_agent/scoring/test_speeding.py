"""Speeding: over the posted limit (or the class maximum) long enough, graded by margin."""

from __future__ import annotations

import pytest

from edge_agent import signals as sig
from edge_agent.samples import Value
from edge_agent.scoring import ScoringConfig

from .streams import T0, Outcome, Profile, Stream, car, const, score, steps


def drive(speed: Profile, limit: Value | None = 50.0, duration: float = 60.0) -> Stream:
    stream = car(duration, speed, period=0.1)
    if limit is not None:
        stream.add(sig.SPEED_LIMIT, 0.1, const(limit))
    return stream


def over(kmh: float, seconds: float, *, base: float = 45.0, at: float = 10.0) -> Profile:
    """Cruise at ``base``, ``kmh`` for ``seconds`` from ``at``, then back."""
    return steps((0, base), (at, kmh), (at + seconds, base))


def speeding(outcome: Outcome) -> list[tuple[str, float, float]]:
    return [
        (e.severity, round(e.start - T0, 2), round(e.duration_s, 2)) for e in outcome.of("speeding")
    ]


def test_minor_needs_more_than_10_over_for_10_s() -> None:
    assert speeding(score(drive(over(61, 9.9)))) == []
    assert speeding(score(drive(over(60, 30)))) == []  # exactly +10 is not "more than"
    assert speeding(score(drive(over(61, 10.5)))) == [("minor", 10.0, 10.5)]


def test_major_needs_more_than_20_over_for_5_s_and_starts_there() -> None:
    assert speeding(score(drive(over(71, 4.9)))) == []
    profile = steps((0, 45.0), (10, 62.0), (13, 72.0), (19, 45.0))
    [event] = score(drive(profile)).of("speeding")
    assert (event.severity, round(event.start - T0, 2)) == ("major", 13.0)
    assert event.peak == 72.0 and event.speed_kmh == 72.0
    assert event.duration_s == pytest.approx(6.0)


def test_critical_beyond_40_over() -> None:
    assert speeding(score(drive(over(95, 6)))) == [("critical", 10.0, 6.0)]


def test_stretch_wavering_above_release_is_one_event() -> None:
    # 59 km/h is +9: below the minor margin but above its release level (+8.3).
    profile = steps((0, 45.0), (10, 62.0), (21, 59.0), (23, 64.0), (30, 45.0))
    assert speeding(score(drive(profile))) == [("minor", 10.0, 20.0)]


def test_limit_changes_during_the_drive() -> None:
    stream = drive(const(71.0), limit=None).add(sig.SPEED_LIMIT, 0.1, steps((0, 80.0), (20, 50.0)))
    assert speeding(score(stream)) == [("major", 20.0, 40.0)]


def test_without_limit_signal_the_class_maximum_applies() -> None:
    assert speeding(score(drive(over(109, 30, base=90), limit=None))) == []
    assert speeding(score(drive(over(111, 12, base=90), limit=None))) == [("minor", 10.0, 12.0)]
    truck = ScoringConfig.for_class("heavy_truck")
    assert speeding(score(drive(over(91, 12, base=75), limit=None), truck)) == [
        ("minor", 10.0, 12.0)
    ]


def test_zero_limit_means_unknown() -> None:
    assert speeding(score(drive(const(60.0), limit=0.0))) == []


def test_points_per_started_minute() -> None:
    [minor] = score(drive(over(62, 70), duration=100)).of("speeding")
    assert minor.points == 3 * 2
    [major] = score(drive(over(75, 61), duration=100)).of("speeding")
    assert major.points == 8 * 2
