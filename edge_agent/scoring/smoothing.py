"""Time-window filters over irregular samples: moving average, slope and drop of a signal."""

from __future__ import annotations

from collections import deque

# Timestamps on a window's edge count as inside; CAN clocks are not exact multiples.
_EDGE = 1e-6


class MovingAverage:
    """Mean of the values seen in the last ``window_s`` seconds of source time.

    Independent of the sample rate, so a single-sample spike is diluted the same way at
    10 Hz and at 100 Hz (by the number of samples in the window).
    """

    __slots__ = ("_samples", "_sum", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def push(self, timestamp: float, value: float) -> float:
        """Add a value and return the mean over the window ending at ``timestamp``."""
        self._samples.append((timestamp, value))
        self._sum += value
        horizon = timestamp - self.window_s - _EDGE
        while self._samples[0][0] < horizon:
            self._sum -= self._samples.popleft()[1]
        if len(self._samples) == 1:
            self._sum = value  # shed accumulated rounding whenever the window empties
        return self._sum / len(self._samples)

    def reset(self) -> None:
        """Forget every value (after a gap in the data)."""
        self._samples.clear()
        self._sum = 0.0


class Slope:
    """Rate of change of a signal over the last ``window_s`` seconds (units per second).

    Returns None until the window spans at least half its length, so a derivative is never
    taken over two samples a few milliseconds apart.
    """

    __slots__ = ("_samples", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()

    def push(self, timestamp: float, value: float) -> float | None:
        """Add a value; return (value - oldest in window) / elapsed, or None if too short."""
        self._samples.append((timestamp, value))
        horizon = timestamp - self.window_s - _EDGE
        while self._samples[0][0] < horizon:
            self._samples.popleft()
        first_ts, first_value = self._samples[0]
        elapsed = timestamp - first_ts
        if elapsed < self.window_s / 2:
            return None
        return (value - first_value) / elapsed

    def reset(self) -> None:
        """Forget every value."""
        self._samples.clear()


class Drop:
    """How far a signal fell from its highest value within the last ``window_s`` seconds."""

    __slots__ = ("_samples", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()

    def push(self, timestamp: float, value: float) -> float:
        """Add a value; return max(values in window) - value (0 when not falling)."""
        # Monotonic deque: values kept in decreasing order, so the front is the window max.
        while self._samples and self._samples[-1][1] <= value:
            self._samples.pop()
        self._samples.append((timestamp, value))
        horizon = timestamp - self.window_s - _EDGE
        while self._samples[0][0] < horizon:
            self._samples.popleft()
        return self._samples[0][1] - value

    def reset(self) -> None:
        """Forget every value."""
        self._samples.clear()
