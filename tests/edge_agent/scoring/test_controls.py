"""Pedal misapplication (stomp at crawl speed, both pedals) and seatbelt use."""

from __future__ import annotations

from edge_agent import signals as sig
from edge_agent.scoring import Event

from .streams import T0, Profile, Stream, car, const, ramp, score, steps


def stomp(
    *, rise_s: float = 0.4, speed: float = 5.0, lunge: float = 4.0, gear: float = 1.0
) -> list[Event]:
    """Crawling, accelerator 0 → 90 % in ``rise_s`` from t=5, the car lunges at ``lunge``."""
    stream = car(
        12, steps((0, speed), (6, speed + 8)), accel=steps((0, 0.0), (5.2, lunge), (6.5, 0.0))
    )
    stream.add(sig.ACCEL_PEDAL, 0.02, ramp((5, 0.0), (5 + rise_s, 90.0), (7, 90.0), (7.2, 0.0)))
    stream.add(sig.BRAKE_PEDAL, 0.02, const(0.0))
    stream.add(sig.GEAR, 0.05, const(gear))
    return score(stream).of("pedal_misapplication")


def test_full_accelerator_stomp_at_crawl_speed_with_a_lunge() -> None:
    [event] = stomp()
    assert event.severity == "critical"
    assert 5.0 <= event.start - T0 <= 5.4
    assert event.peak > 3.0
    assert event.points == 15


def test_slow_press_is_driving_not_a_mistake() -> None:
    assert stomp(rise_s=1.5) == []


def test_stomp_above_crawl_speed_is_not_misapplication() -> None:
    assert stomp(speed=15.0) == []


def test_stomp_without_a_lunge_is_nothing() -> None:
    assert stomp(lunge=2.5) == []


def test_reverse_counts_at_any_speed_and_either_direction() -> None:
    assert len(stomp(speed=12.0, lunge=-4.0, gear=-1.0)) == 1
    assert stomp(speed=12.0, lunge=-4.0, gear=1.0) == []


def both_pedals(seconds: float, *, speed: float = 30.0, level: float = 20.0) -> list[Event]:
    stream = car(10, const(speed), period=0.02)
    pedal = steps((0, 0.0), (2, level), (2 + seconds, 0.0))
    stream.add(sig.ACCEL_PEDAL, 0.02, pedal)
    stream.add(sig.BRAKE_PEDAL, 0.02, pedal)
    return score(stream).of("pedal_misapplication")


def test_both_pedals_for_a_second_above_5_kmh() -> None:
    [event] = both_pedals(1.5)
    assert (event.severity, round(event.start - T0, 2), event.peak) == ("major", 2.0, 20.0)
    assert both_pedals(0.9) == []
    assert both_pedals(1.5, speed=4.0) == []
    assert both_pedals(1.5, level=10.0) == []  # "more than 10 %"


def belt(profile: Profile, speed: float = 30.0) -> list[Event]:
    stream = car(30, const(speed), period=0.1).add(sig.BELTED, 0.1, profile)
    return score(stream).of("seatbelt")


def test_unbelted_for_10_s_above_10_kmh() -> None:
    [event] = belt(steps((0, True), (5, False), (16, True)))
    assert (round(event.start - T0, 2), round(event.duration_s, 2)) == (5.0, 11.0)
    assert event.points == 10 and event.peak == 30.0
    assert belt(steps((0, True), (5, False), (14.9, True))) == []
    assert belt(const(False), speed=10.0) == []


def test_seatbelt_unknown_is_not_unbelted() -> None:
    stream = Stream(30).add(sig.IGNITION, 0.1, const(True)).add(sig.SPEED, 0.1, const(50.0))
    assert score(stream).of("seatbelt") == []
