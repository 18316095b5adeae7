"""The shared threshold state machine: sustain, hysteresis, re-arm, gate, severity."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.scoring.level import LevelDetector, LevelRule, Phase
from edge_agent.scoring.model import Event

RULE = LevelRule("harsh_braking", threshold=3.5, sustain_s=0.3, hysteresis=0.17, rearm_s=2.0)


def run(values: list[tuple[float, float]], rule: LevelRule = RULE, **kw: bool) -> list[Event]:
    detector = LevelDetector(rule)
    events = [detector.update(t, v, speed_kmh=50.0, **kw) for t, v in values]
    closed = [e for e in events if e is not None]
    last = detector.finish(values[-1][0] + 0.01) if values else None
    return closed + ([last] if last else [])


def plateau(
    level: float, start: float, length: float, total: float = 10.0
) -> list[tuple[float, float]]:
    """0 except ``level`` during [start, start+length), sampled at 100 Hz."""
    return [
        (n / 100, level if start <= n / 100 < start + length else 0.0)
        for n in range(int(total * 100))
    ]


def test_at_threshold_for_sustain_time_is_one_event() -> None:
    events = run(plateau(3.5, 1.0, 1.0))
    assert len(events) == 1
    assert abs(events[0].start - 1.0) < 1e-9
    assert abs(events[0].duration_s - 1.0) < 0.011
    assert events[0].peak == 3.5
    assert events[0].speed_kmh == 50.0


def test_just_below_threshold_is_nothing() -> None:
    assert run(plateau(3.49, 1.0, 5.0)) == []


def test_shorter_than_sustain_is_nothing() -> None:
    assert run(plateau(9.0, 1.0, 0.29)) == []
    assert len(run(plateau(9.0, 1.0, 0.31))) == 1


def test_dip_above_release_level_keeps_one_event() -> None:
    values = plateau(4.0, 1.0, 3.0)
    values = [(t, 3.0 if 2.0 <= t < 2.5 else v) for t, v in values]  # 3.0 > 3.5 * 0.83
    events = run(values)
    assert len(events) == 1
    assert abs(events[0].duration_s - 3.0) < 0.011


def test_no_new_event_before_rearm_time() -> None:
    values = [(t, 4.0 if 1 <= t < 2 or 2.5 <= t < 3.5 else 0.0) for t, _ in plateau(0, 0, 0)]
    assert len(run(values)) == 1
    values = [(t, 4.0 if 1 <= t < 2 or 4.5 <= t < 5.5 else 0.0) for t, _ in plateau(0, 0, 0)]
    assert [round(e.start, 2) for e in run(values)] == [1.0, 4.5]


def test_rearm_clock_restarts_when_value_rises_again() -> None:
    # Above the release level again at 3.0 s: the 2 s below must be counted from 3.5 s.
    values = [
        (t, 4.0 if 1 <= t < 2 else 3.2 if 3 <= t < 3.5 else 4.0 if 4.6 <= t < 5.6 else 0.0)
        for t, _ in plateau(0, 0, 0)
    ]
    assert len(run(values)) == 1


def test_gate_closed_at_start_means_no_event() -> None:
    assert run(plateau(5.0, 1.0, 2.0), gate=False) == []


def test_finish_closes_an_open_event_and_drops_a_pending_one() -> None:
    detector = LevelDetector(RULE)
    for n in range(100):
        detector.update(n / 100, 5.0, speed_kmh=60.0)
    assert detector.phase is Phase.ACTIVE
    event = detector.finish(1.5)
    assert event is not None and abs(event.duration_s - 1.5) < 1e-9
    detector.update(2.0, 5.0, speed_kmh=60.0)
    assert detector.phase is Phase.PENDING
    assert detector.finish(2.1) is None


def test_severity_grades_by_peak() -> None:
    assert run(plateau(4.0, 1, 1))[0].severity == "minor"
    assert run(plateau(3.5 * 1.4, 1, 1))[0].severity == "major"
    assert run(plateau(3.5 * 1.8, 1, 1))[0].severity == "critical"
    fixed = LevelRule("seatbelt", 10.0, 1.0, 0.17, 2.0, inclusive=False, fixed_severity="major")
    assert run(plateau(99.0, 1, 2), fixed)[0].severity == "major"


def test_exclusive_rule_needs_strictly_above() -> None:
    rule = LevelRule("seatbelt", 10.0, 1.0, 0.17, 2.0, inclusive=False)
    assert run(plateau(10.0, 1, 3), rule) == []
    assert len(run(plateau(10.01, 1, 3), rule)) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-50, max_value=50), min_size=1, max_size=400))
def test_events_are_ordered_disjoint_and_above_threshold(values: list[float]) -> None:
    events = run([(n / 100, v) for n, v in enumerate(values)])
    for event in events:
        assert event.peak >= RULE.threshold
        assert event.duration_s >= RULE.sustain_s - 1e-9
    for first, second in itertools.pairwise(events):
        assert second.start >= first.end + RULE.rearm_s - 1e-9
    if max(values) < RULE.threshold:
        assert events == []
