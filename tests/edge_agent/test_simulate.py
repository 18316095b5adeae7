"""The drive simulator: determinism, plausibility, bus load and ground truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import can
import pytest

from edge_agent.errors import ConfigError
from edge_agent.simulate import SimulationResult, simulate
from edge_agent.simulate.drive import Drive
from edge_agent.simulate.plan import SCENARIOS, PlanBuilder
from edge_agent.simulate.vehicle import Vehicle


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_log_other_seed_other_log(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a.log", scenario="city", seed=11, duration=30)
    b = simulate(tmp_path / "b.log", scenario="city", seed=11, duration=30)
    c = simulate(tmp_path / "c.log", scenario="city", seed=12, duration=30)
    assert _digest(a.path) == _digest(b.path)
    assert a.truth == b.truth
    assert _digest(a.path) != _digest(c.path)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(
        tmp_path_factory.mktemp("sim") / "city.log", scenario="city", seed=4, duration=60
    )


def test_bus_load_is_realistic_and_mostly_background(city: SimulationResult) -> None:
    messages = list(can.LogReader(city.path))
    assert len(messages) == city.frames
    duration = messages[-1].timestamp - messages[0].timestamp
    rate = len(messages) / duration
    assert 1000 <= rate <= 3000
    demo_ids = {
        0x0B4,
        0x0B0,
        0x130,
        0x025,
        0x1A0,
        0x0C9,
        0x3A0,
        0x1F5,
        0x18FEC117,
        0x3B3,
        0x18FEF31C,
    }
    mapped = sum(m.arbitration_id in demo_ids for m in messages)
    assert 0.1 < mapped / len(messages) < 0.5
    assert any(m.is_extended_id and m.arbitration_id not in demo_ids for m in messages)
    stamps = [m.timestamp for m in messages]
    assert stamps == sorted(stamps)


def test_truth_is_consistent_with_the_drive(city: SimulationResult) -> None:
    truth = city.truth
    assert truth["scenario"] == "city"
    assert truth["vehicle_class"] == "car"
    assert isinstance(truth["distance_km"], float) and truth["distance_km"] > 0.2
    assert isinstance(truth["duration_s"], float) and truth["duration_s"] >= 60
    events = truth["events"]
    assert isinstance(events, list)
    for event in events:
        assert event["start"].startswith("2026-11-26T01:")
        assert event["duration_s"] > 0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_injected_events_exceed_and_normal_driving_stays_below_thresholds(scenario: str) -> None:
    """Physics only (no encoding): harsh phases are harsh, everything else is gentle."""
    harsh_limit = 3.0 if scenario == "truck" else 3.5
    for seed in range(2):
        builder = PlanBuilder(scenario, seed, 300, crash=seed == 0)
        phases, episodes = builder.build()
        drive = Drive(Vehicle(builder.params, 1000.0), phases, episodes)
        calm_accel = calm_lat = 0.0
        last_harsh = -10.0
        for state in drive.ticks():
            assert drive.phase is not None
            if drive.phase.episode is not None:
                last_harsh = state.t
            elif state.t - last_harsh > 1.0:  # the vehicle needs a moment to settle
                calm_accel = max(calm_accel, abs(state.accel))
                calm_lat = max(calm_lat, abs(state.lateral))
        assert calm_accel < 0.75 * harsh_limit
        assert calm_lat < 0.75 * (4.0 if scenario != "truck" else 3.0)
        truth = drive.truth_events()
        kinds = {e["type"] for e in truth}
        assert kinds <= {
            "harsh_braking",
            "harsh_acceleration",
            "harsh_cornering",
            "speeding",
            "idling",
            "crash",
        }
        for event in truth:
            if event["type"] in ("harsh_braking", "harsh_acceleration"):
                assert float(str(event["peak"])) > harsh_limit
            if event["type"] == "harsh_cornering":
                assert float(str(event["peak"])) > (3.5 if scenario == "truck" else 4.5)
        if seed == 0:
            assert "crash" in kinds


def test_unknown_scenario_and_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scenario 'moon'"):
        simulate(tmp_path / "x.log", scenario="moon")
    with pytest.raises(ConfigError, match=r"x\.pcap"):
        simulate(tmp_path / "x.pcap", duration=5)
