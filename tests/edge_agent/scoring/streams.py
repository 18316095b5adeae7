"""Hand-built sample streams for the scoring tests: signals at their own rates, interleaved."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge_agent import signals as sig
from edge_agent.samples import Sample, Value
from edge_agent.scoring import Event, Scorer, ScoringConfig, Trip

#: 2026-11-26 10:00 JST: a daytime start, so night share is 0 unless a test says otherwise.
T0 = datetime(2026, 11, 26, 1, 0, 0, tzinfo=UTC).timestamp()

Profile = Callable[[float], Value]


def const(value: Value) -> Profile:
    """A signal that never changes."""
    return lambda _t: value


def steps(*points: tuple[float, Value]) -> Profile:
    """Piecewise constant: ``(from_t, value)`` pairs, each holding until the next."""

    def profile(t: float) -> Value:
        current = points[0][1]
        for start, value in points:
            if t >= start - 1e-9:
                current = value
        return current

    return profile


def ramp(*points: tuple[float, float]) -> Profile:
    """Piecewise linear through ``(t, value)`` points, flat outside them."""

    def profile(t: float) -> Value:
        if t <= points[0][0]:
            return points[0][1]
        for (t1, v1), (t2, v2) in itertools.pairwise(points):
            if t <= t2:
                return v1 + (v2 - v1) * (t - t1) / (t2 - t1)
        return points[-1][1]

    return profile


@dataclass
class Stream:
    """Signals with their periods; :meth:`samples` interleaves them in time order."""

    duration: float
    signals: dict[str, tuple[float, Profile]] = field(default_factory=dict)
    start: float = T0

    def add(self, name: str, period: float, profile: Profile) -> Stream:
        """Add (or replace) one signal."""
        self.signals[name] = (period, profile)
        return self

    def samples(self) -> list[Sample]:
        """Every sample, ordered by timestamp (ties in the order signals were added)."""
        out: list[tuple[float, int, Sample]] = []
        for order, (name, (period, profile)) in enumerate(self.signals.items()):
            n = 0
            while n * period <= self.duration + 1e-9:
                t = n * period
                out.append((t, order, Sample(name, profile(t), self.start + t, "test")))
                n += 1
        out.sort(key=lambda item: (item[0], item[1]))
        return [sample for _, _, sample in out]


def car(
    duration: float, speed: Profile, *, accel: Profile | None = None, period: float = 0.01
) -> Stream:
    """A running, belted car on a CAN bus: ignition, speed at 50 Hz, IMU at 100 Hz, rpm.

    A longer ``period`` thins speed and IMU to that period (tests that need no IMU detail).
    """
    stream = Stream(duration)
    stream.add(sig.IGNITION, 0.1, const(True))
    stream.add(sig.SPEED, max(period, 0.02), speed)
    stream.add(sig.ACCEL_LON, period, accel if accel is not None else const(0.0))
    stream.add(sig.ACCEL_LAT, period, const(0.0))
    stream.add(sig.ENGINE_SPEED, 0.1, const(1500.0))
    stream.add(sig.BELTED, 0.1, const(True))
    return stream


@dataclass
class Outcome:
    """What a scorer made of a stream."""

    fed: list[Event]
    trips: list[Trip]
    scorer: Scorer

    @property
    def events(self) -> list[Event]:
        """Every event of every trip, in start order."""
        return sorted((e for trip in self.trips for e in trip.events), key=lambda e: e.start)

    def of(self, kind: str) -> list[Event]:
        """Events of one type."""
        return [e for e in self.events if e.type == kind]


def score(samples: Iterable[Sample] | Stream, config: ScoringConfig | None = None) -> Outcome:
    """Feed every sample to a fresh scorer and finish it."""
    scorer = Scorer(config)
    fed: list[Event] = []
    items = samples.samples() if isinstance(samples, Stream) else samples
    for sample in items:
        fed.extend(scorer.feed(sample))
    return Outcome(fed, scorer.finish(), scorer)
