"""Time-window filters: moving average, slope, drop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.scoring.smoothing import Drop, MovingAverage, Slope


def test_moving_average_covers_the_window_only() -> None:
    avg = MovingAverage(0.3)
    means = [avg.push(n / 10, float(n)) for n in range(10)]
    assert means[0] == 0.0
    assert means[3] == 1.5  # 0, 1, 2, 3 (0.0 is on the window's edge)
    assert means[9] == 7.5  # 6, 7, 8, 9


def test_single_spike_is_diluted_by_the_window() -> None:
    avg = MovingAverage(0.3)
    out = [avg.push(n / 100, 4.0 if n == 50 else 0.0) for n in range(100)]
    assert max(out) < 0.2


def test_slope_needs_half_a_window() -> None:
    slope = Slope(1.0)
    assert slope.push(0.0, 50.0) is None
    assert slope.push(0.4, 46.0) is None
    assert slope.push(1.0, 40.0) == -10.0
    assert slope.push(2.0, 40.0) == 0.0


def test_drop_measures_fall_from_window_maximum() -> None:
    drop = Drop(0.15)
    assert drop.push(0.0, 40.0) == 0.0
    assert drop.push(0.1, 31.0) == 9.0
    assert drop.push(0.3, 31.0) == 0.0  # the 40 left the window
    assert drop.push(0.35, 35.0) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=1, max_size=200))
def test_moving_average_lies_within_the_window(values: list[float]) -> None:
    avg = MovingAverage(0.05)
    for n, value in enumerate(values):
        mean = avg.push(n / 100, value)
        window = values[max(0, n - 5) : n + 1]
        assert min(window) - 1e-6 <= mean <= max(window) + 1e-6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=300), min_size=1, max_size=200))
def test_drop_is_window_max_minus_current(values: list[float]) -> None:
    drop = Drop(0.15)
    for n, value in enumerate(values):
        window = values[max(0, n - 15) : n + 1]
        assert abs(drop.push(n / 100, value) - (max(window) - value)) < 1e-9
