"""Simulated drives replayed through the live path: events and distance against ground truth.

Every scenario, with seeds picked so that each event type the simulator injects appears, plus
a drive with nothing injected and one ending in a crash. Drives are short to keep the suite
fast; ``bench/scoring_truth.py`` runs ten seeds of every scenario for precision and recall.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.replay import Replay
from edge_agent.scoring import Scorer, ScoringConfig, Trip
from edge_agent.scoring.evaluate import match_events, truth_events
from edge_agent.simulate import SCENARIOS, simulate

MAP = Path(__file__).resolve().parents[3] / "dbc" / "msp_demo.toml"
DURATION_S = 120.0

CASES = [
    ("city", 4, False),  # harsh cornering, harsh braking
    ("city", 9, False),  # harsh acceleration, harsh braking
    ("highway", 1, False),  # speeding (graded)
    ("highway", 8, False),  # speeding
    ("mixed", 6, False),  # nothing injected
    ("truck", 4, False),  # heavy-truck thresholds: cornering, braking
    ("truck", 9, False),  # heavy-truck thresholds: acceleration, braking
    ("city", 2, True),  # harsh braking, then a crash
]


def test_cases_cover_every_scenario() -> None:
    assert {scenario for scenario, _, _ in CASES} == set(SCENARIOS)


def drive(tmp: Path, scenario: str, seed: int, crash: bool) -> tuple[dict[str, object], list[Trip]]:
    result = simulate(
        tmp / "drive.log",
        scenario=scenario,
        seed=seed,
        duration=DURATION_S,
        crash=crash,
        background=False,
    )
    scorer = Scorer(ScoringConfig.for_class(str(result.truth["vehicle_class"])))
    for sample in Replay(result.path, MAP).samples():
        scorer.feed(sample)
    return result.truth, scorer.finish()


@pytest.mark.parametrize(
    ("scenario", "seed", "crash"),
    CASES,
    ids=[f"{s}-{n}{'-crash' if c else ''}" for s, n, c in CASES],
)
def test_replayed_drive_matches_the_truth(
    tmp_path: Path, scenario: str, seed: int, crash: bool
) -> None:
    truth, trips = drive(tmp_path, scenario, seed, crash)
    assert len(trips) == 1
    [trip] = trips
    labels = truth_events(truth)
    matching = match_events(trip.events, labels, tolerance_s=1.0)
    assert matching.missed == (), f"missed: {matching.missed}"
    assert matching.spurious == (), f"not injected: {matching.spurious}"
    for label, event in matching.matched:
        if label.severity is not None:
            assert event.severity == label.severity, (label, event)
    assert trip.distance_km == pytest.approx(float(str(truth["distance_km"])), rel=0.01)
    assert trip.odometer_mismatch is False
    assert trip.fuel_l == pytest.approx(float(str(truth["fuel_l"])), rel=0.02)
    if crash:
        assert [label.type for label in labels][-1] == "crash"
