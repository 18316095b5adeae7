"""What a report gathers from a replay: the replay's own events and trips, the accelerations as
the harsh detectors saw them, the penalty breakdown, positions of events."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import signals as sig
from edge_agent.replay import Replay
from edge_agent.report import TripReport, collect
from edge_agent.report.decimate import minmax
from tests.conftest import DEMO_MAP

HARSH = {"harsh_braking": -1.0, "harsh_acceleration": 1.0, "harsh_cornering": 0.0}


@pytest.fixture(scope="module")
def gathered(drive_log: Path) -> tuple[TripReport, dict[str, object]]:
    replay = Replay(drive_log, DEMO_MAP)
    report = collect(replay)
    return report, replay.report.to_json()


def test_the_events_and_trips_are_the_replays(
    gathered: tuple[TripReport, dict[str, object]], drive_log: Path
) -> None:
    report, data = gathered
    alone = Replay(drive_log, DEMO_MAP).run().to_json()  # the same log, no tap
    assert data["events"] == alone["events"] and data["trips"] == alone["trips"]
    assert [(e.type, e.severity, e.peak) for e in report.events] == [
        (e["type"], e["severity"], e["peak"]) for e in alone["events"]]  # type: ignore[attr-defined]  # fmt: skip
    [trip] = report.trips
    assert trip.score == alone["trips"][0]["score"]  # type: ignore[index]


def test_the_breakdown_adds_up_to_the_trips_points(
    gathered: tuple[TripReport, dict[str, object]],
) -> None:
    report, data = gathered
    [trip] = report.trips
    assert sum(line.points for line in trip.penalties) == pytest.approx(trip.penalty_points)
    counts = {line.type: line.count for line in trip.penalties}
    assert counts == {k: n for k, n in data["trips"][0]["events"].items() if n}  # type: ignore[index]
    assert trip.penalty_points > 0 and trip.score is not None and trip.score < 100


def test_each_harsh_event_crosses_its_threshold_on_the_drawn_line(
    gathered: tuple[TripReport, dict[str, object]],
) -> None:
    report, _ = gathered
    th = report.thresholds
    limits = {"harsh_braking": th.harsh_braking_mps2,
              "harsh_acceleration": th.harsh_acceleration_mps2,
              "harsh_cornering": th.harsh_cornering_mps2}  # fmt: skip
    harsh = [e for e in report.events if e.type in HARSH]
    assert len(harsh) >= 3
    for event in harsh:
        trace = report.scored_lat if event.type == "harsh_cornering" else report.scored_lon
        assert trace is not None
        t, v = np.frombuffer(trace.t), np.frombuffer(trace.v)
        during = v[(t >= event.start - 0.01) & (t <= event.end + 0.01)]
        sign = HARSH[event.type]
        seen = np.abs(during) if sign == 0.0 else sign * during
        assert seen.max() >= limits[event.type], event
        assert seen.max() == pytest.approx(event.peak, abs=2e-3)  # the peak the event reports


def test_traces_and_positions(gathered: tuple[TripReport, dict[str, object]]) -> None:
    report, data = gathered
    for name in (sig.SPEED, sig.ACCEL_LON, sig.ACCEL_LAT, sig.ACCEL_PEDAL, sig.BRAKE_PEDAL,
                 sig.STEERING_ANGLE):  # fmt: skip
        trace = report.traces[name]
        assert len(trace) == data["signals"][name]["count"]  # type: ignore[index]
        assert min(trace.v) == pytest.approx(data["signals"][name]["min"], abs=1e-6)  # type: ignore[index]
    assert len(report.route) == data["signals"][sig.LATITUDE]["count"]  # type: ignore[index]
    assert all(e.location is not None for e in report.events)
    lat_min = data["signals"][sig.LATITUDE]["min"]  # type: ignore[index]
    assert all(e.location[0] >= lat_min - 1e-6 for e in report.events if e.location)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3000),
       buckets=st.integers(1, 400))  # fmt: skip
def test_thinning_keeps_the_peaks_the_ends_and_the_order(values: list[float], buckets: int) -> None:
    t = array("d", range(len(values)))
    v = array("d", values)
    kept_t, kept_v = minmax(t, v, buckets)
    assert len(kept_t) <= max(len(values), 2 * buckets + 2)
    assert kept_v.max() == max(values) and kept_v.min() == min(values)
    assert kept_t[0] == 0 and kept_t[-1] == len(values) - 1
    assert (np.diff(kept_t) > 0).all()
    assert all(kept_v[i] == values[int(x)] for i, x in enumerate(kept_t))
