"""Matching detections to ground truth, and reading truth documents."""

from __future__ import annotations

import pytest

from edge_agent.errors import ConfigError
from edge_agent.scoring import Event
from edge_agent.scoring.evaluate import Tally, TruthEvent, match_events, truth_events


def event(kind: str, start: float) -> Event:
    return Event(kind, start, 1.0, 4.0, 50.0, "minor")  # type: ignore[arg-type]


def test_match_pairs_same_type_within_tolerance() -> None:
    truth = [
        TruthEvent("harsh_braking", 100.0),
        TruthEvent("speeding", 200.0),
        TruthEvent("harsh_braking", 300.0),
    ]
    found = [
        event("harsh_braking", 100.6),
        event("harsh_acceleration", 200.2),
        event("harsh_braking", 301.5),
    ]
    matching = match_events(found, truth)
    assert [(label.start, e.start) for label, e in matching.matched] == [(100.0, 100.6)]
    assert [label.start for label in matching.missed] == [200.0, 300.0]
    assert [e.start for e in matching.spurious] == [200.2, 301.5]
    tally = Tally()
    tally.add(matching)
    assert tally.precision("harsh_braking") == 0.5 and tally.recall("harsh_braking") == 0.5
    assert tally.precision("speeding") is None and tally.recall("speeding") == 0.0
    assert tally.types() == ["harsh_acceleration", "harsh_braking", "speeding"]


def test_one_detection_serves_one_label() -> None:
    truth = [TruthEvent("crash", 10.0), TruthEvent("crash", 10.5)]
    matching = match_events([event("crash", 10.4)], truth)
    assert len(matching.matched) == 1 and len(matching.missed) == 1


def test_truth_document_is_read_with_clear_errors() -> None:
    doc = {
        "events": [{"type": "speeding", "start": "2026-11-26T01:00:10.500Z", "severity": "major"}]
    }
    assert truth_events(doc) == [TruthEvent("speeding", 1795654810.5, "major")]
    with pytest.raises(ConfigError, match=r"truth: events\[0\]\.start: 'yesterday' is not an ISO"):
        truth_events({"events": [{"type": "speeding", "start": "yesterday"}]})
    with pytest.raises(ConfigError, match=r"events\[0\]\.start: .* has no time zone"):
        truth_events({"events": [{"type": "speeding", "start": "2026-11-26T01:00:00"}]})
    with pytest.raises(ConfigError, match=r"events\[1\]\.type: expected a string"):
        truth_events({"events": [doc["events"][0], {"start": "2026-11-26T01:00:00Z"}]})  # type: ignore[index]
    with pytest.raises(ConfigError, match="'events' must be a list"):
        truth_events({})
