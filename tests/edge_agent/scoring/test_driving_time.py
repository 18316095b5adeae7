"""Idling, and continuous driving without breaks (改善基準告示), on the source clock."""

from __future__ import annotations

import pytest

from edge_agent import signals as sig
from edge_agent.scoring import Event, ScoringConfig

from .streams import T0, Stream, const, score, steps

MIN = 60.0
HOUR = 3600.0


def idle(seconds: float, *, rpm: float = 800.0, fuel_lph: float = 0.72) -> Stream:
    """Drive 20 s, stand with the engine at ``rpm`` for ``seconds``, drive 20 s (1 Hz)."""
    stop, go = 20.0, 20.0 + seconds
    stream = Stream(go + 20)
    stream.add(sig.IGNITION, 1.0, const(True))
    stream.add(sig.SPEED, 1.0, steps((0, 40.0), (stop, 0.0), (go, 40.0)))
    stream.add(sig.ENGINE_SPEED, 1.0, const(rpm))
    stream.add(sig.FUEL_RATE, 1.0, steps((0, 5.0), (stop, fuel_lph), (go, 5.0)))
    return stream


def test_idling_for_300_s_is_an_event_with_its_fuel() -> None:
    outcome = score(idle(300))
    [event] = outcome.of("idling")
    assert (event.start - T0, event.duration_s) == (20.0, 300.0)
    assert event.peak == pytest.approx(0.72 * 300 / 3600)
    assert event.points == 0
    trip = outcome.trips[0]
    assert trip.idle_s == pytest.approx(300.0)
    assert trip.idle_fuel_l == pytest.approx(0.72 * 300 / 3600, rel=0.01)
    assert trip.score == 100.0 or trip.score is None


def test_shorter_idling_is_only_idle_time() -> None:
    outcome = score(idle(299))
    assert outcome.of("idling") == []
    assert outcome.trips[0].idle_s == pytest.approx(299.0)


def test_engine_off_at_a_stop_is_not_idling() -> None:
    outcome = score(idle(400, rpm=0.0, fuel_lph=0.0))
    assert outcome.of("idling") == []
    assert outcome.trips[0].idle_s == 0.0


def shift(*legs: tuple[float, float]) -> Stream:
    """Alternate (drive minutes, stop minutes) legs at 0.5 Hz; engine off while stopped."""
    points: list[tuple[float, object]] = []
    t = 0.0
    for drive_min, stop_min in legs:
        points.append((t, 60.0))
        t += drive_min * MIN
        points.append((t, 0.0))
        t += stop_min * MIN
    stream = Stream(t)
    stream.add(sig.SPEED, 2.0, steps(*points))  # type: ignore[arg-type]
    stream.add(sig.IGNITION, 2.0, steps(*[(at, v > 0) for at, v in points]))  # type: ignore[operator]
    return stream


def continuous(stream: Stream, vehicle_class: str = "heavy_truck") -> list[Event]:
    return score(stream, ScoringConfig.for_class(vehicle_class)).of("continuous_driving")


def test_truck_over_4_h_without_breaks() -> None:
    [event] = continuous(shift((250, 1)))
    assert event.start - T0 == pytest.approx(4 * HOUR, abs=2)
    assert event.duration_s == pytest.approx(10 * MIN, abs=2)
    assert event.severity == "major" and event.points == 10
    assert event.peak == pytest.approx(250 / 60, abs=0.01)
    assert continuous(shift((239, 1))) == []


def test_a_30_min_break_resets_the_count() -> None:
    assert continuous(shift((200, 30), (200, 1))) == []


def test_breaks_under_10_min_do_not_count() -> None:
    # 9 + 9 + 12 min of stops: only the 12 counts, so driving goes on past 4 h.
    [event] = continuous(shift((60, 9), (60, 9), (60, 12), (70, 1)))
    assert event.start - T0 == pytest.approx(4 * HOUR + 30 * MIN, abs=4)


def test_10_min_breaks_add_up_to_a_rest() -> None:
    assert continuous(shift((80, 10), (80, 10), (70, 10), (200, 1))) == []


def test_cars_get_a_2_h_advisory() -> None:
    [event] = continuous(shift((130, 1)), "car")
    assert event.severity == "minor"
    assert event.start - T0 == pytest.approx(2 * HOUR, abs=2)


def test_points_per_started_30_min_past_the_limit() -> None:
    [event] = continuous(shift((300, 1)))
    assert event.points == 20
