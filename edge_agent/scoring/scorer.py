"""The scoring stage: canonical samples in, driving events and trips out."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import signals as sig
from ..samples import Sample, Value
from .config import ScoringConfig
from .controls import PedalMisapplicationDetector, SeatbeltDetector
from .crash import CrashDetector
from .driving_time import ContinuousDrivingDetector, IdlingDetector
from .harsh import CorneringDetector, LongitudinalDetector
from .level import Detector
from .model import Event, Trip
from .speeding import SpeedingDetector
from .state import VehicleState, check_sample
from .trip import TripAccumulator

log = logging.getLogger(__name__)

#: Event types a collision's own pulse produces.
_IMPACT_TYPES = frozenset({"harsh_braking", "harsh_acceleration", "harsh_cornering"})
#: How far before the detected crash an impact-made event may start (sensor skew, smoothing).
_IMPACT_LEAD_S = 0.5

#: A detector's ``update``: ``(name, timestamp, state) -> events that closed``.
_Update = Callable[[str, float, VehicleState], Sequence[Event]]
#: What an open trip integrates from a sample of these signals.
_TRIP_HOOKS: dict[str, Callable[[TripAccumulator, float, VehicleState], None]] = {
    sig.SPEED: TripAccumulator.add_speed,
    sig.FUEL_RATE: TripAccumulator.add_fuel_rate,
    sig.MAF: TripAccumulator.add_maf,
}


@dataclass(slots=True)
class _Route:
    """What a sample of one canonical signal does, looked up once per sample (mutable: it
    keeps that signal's last accepted timestamp)."""

    apply: Callable[[float, Value], None]
    always: tuple[_Update, ...]  # detectors that run outside trips too (crash, driving time)
    in_trip: tuple[_Update, ...]
    trip_hook: Callable[[TripAccumulator, float, VehicleState], None] | None
    starts_trips: bool
    is_ignition: bool
    is_odometer: bool
    last_ts: float | None = None


class Scorer:
    """Turns a time-ordered stream of canonical samples into events and trips.

    Feed every sample with :meth:`feed` (signals interleaved at any rates); it returns
    the events that closed on that sample, and a crash the moment it is seen. Trips start
    at ignition on (or first motion when the bus has no ignition signal, or the ignition
    is on) and end at ignition off, after ``trip_end_stationary_s`` stationary with the
    engine off (the trip ends where that stop began), or at :meth:`close` / :meth:`finish`.
    Finished trips wait in :meth:`pop_trips`.

    Bad samples (non-finite, out of range, running backwards in time, an odometer running
    backwards) never raise: each is counted in :attr:`rejected` by reason and logged
    (WARNING for the first of each reason, DEBUG after). Samples of names scoring does
    not read are counted in :attr:`ignored`. Harsh events made by a crash's own impact
    pulse are dropped: the crash event stands for them.
    """

    def __init__(self, config: ScoringConfig | None = None) -> None:
        self.config = config if config is not None else ScoringConfig()
        self.state = VehicleState(self.config)
        self.rejected: Counter[str] = Counter()
        self.ignored = 0
        self._crash = CrashDetector(self.config)
        self._continuous = ContinuousDrivingDetector(self.config)
        self._trip_detectors: tuple[Detector, ...] = (
            LongitudinalDetector(self.config),
            CorneringDetector(self.config),
            SpeedingDetector(self.config),
            IdlingDetector(self.config),
            PedalMisapplicationDetector(self.config),
            SeatbeltDetector(self.config),
        )
        self._always: tuple[Detector, ...] = (self._crash, self._continuous)
        # canonical name -> what a sample of it does, built once, so feed never asks again
        self._routes = {name: self._route(name) for name in sig.CANONICAL}
        self._clock: float | None = None
        self._max_gap_s = self.config.max_gap_s
        self._trip_end_s = self.config.trip_end_stationary_s
        self._trip: TripAccumulator | None = None
        self._stopped_since: float | None = None
        self._ignition: bool | None = None
        self._done: list[Trip] = []
        self._last_crash: float | None = None

    @property
    def in_trip(self) -> bool:
        """Whether a trip is open."""
        return self._trip is not None

    def _route(self, name: str) -> _Route:
        def updates(detectors: tuple[Detector, ...]) -> tuple[_Update, ...]:
            return tuple(d.update for d in detectors if name in d.signals)

        return _Route(
            apply=self.state.applier(name),
            always=updates(self._always),
            in_trip=updates(self._trip_detectors),
            trip_hook=_TRIP_HOOKS.get(name),
            starts_trips=name in (sig.SPEED, sig.IGNITION),
            is_ignition=name == sig.IGNITION,
            is_odometer=name == sig.ODOMETER,
        )

    def feed(self, sample: Sample) -> list[Event]:
        """Take one sample; return the events that closed on it (crashes at once)."""
        name, ts = sample.name, sample.timestamp
        route = self._routes.get(name)
        if route is None:
            self.ignored += 1
            return []
        last = route.last_ts
        if sample.checked:  # the decoder checked all but what depends on earlier samples
            reason = "out_of_order" if last is not None and ts < last else None
        else:
            reason = check_sample(sample, last)
        if reason is None and route.is_odometer and self._trip is not None:
            reason = None if self._trip.add_odometer(float(sample.value)) else "odometer_backwards"
        if reason is not None:
            self._reject(sample, reason)
            return []
        route.last_ts = ts
        state = self.state
        clock = self._clock
        if clock is None:
            self._clock = ts
        else:
            if ts - clock > self._max_gap_s:
                state.forget_motion()
            if ts > clock:
                self._clock = ts
        route.apply(ts, sample.value)
        # Only speed and ignition start a trip; an open one is watched for its end on every
        # sample (what _segment does, inlined for every sample but the ignition's).
        events: list[Event]
        if self._trip is None or route.is_ignition:
            events = self._segment(name, ts) if route.starts_trips else []
        elif not state.stopped:
            self._stopped_since = None
            events = []
        elif self._stopped_since is None:
            self._stopped_since = ts
            events = []
        elif ts - self._stopped_since >= self._trip_end_s:
            events = self._end_trip(self._stopped_since, "stationary with the engine off")
        else:
            events = []
        trip = self._trip
        if trip is not None and route.trip_hook is not None:
            route.trip_hook(trip, ts, state)
        for update in route.always:
            produced = update(name, ts, state)
            if produced:
                events.extend(self._attach(produced))
        if trip is not None:
            for update in route.in_trip:
                produced = update(name, ts, state)
                if produced:
                    events.extend(self._attach(produced))
        return events

    def _reject(self, sample: Sample, reason: str) -> None:
        self.rejected[reason] += 1
        level = logging.WARNING if self.rejected[reason] == 1 else logging.DEBUG
        log.log(
            level,
            "rejected sample %s=%r at t=%r from %r: %s (further %s rejections at DEBUG)",
            sample.name,
            sample.value,
            sample.timestamp,
            sample.source or "?",
            reason,
            reason,
        )

    def _attach(self, events: Sequence[Event]) -> list[Event]:
        kept: list[Event] = []
        for event in events:
            if event.type == "crash":
                self._last_crash = event.start
            elif event.type in _IMPACT_TYPES and self._explained_by_crash(event):
                log.info("%s at t=%.3f is the crash's impact, not driving", event.type, event.start)
                continue
            kept.append(event)
        if self._trip is not None:
            self._trip.events.extend(kept)
        return kept

    def _explained_by_crash(self, event: Event) -> bool:
        # The impact pulse itself trips the harsh detectors; an event that began with the
        # impact (or after it, while the vehicle comes to rest) is not a driving event.
        # Harsh braking that began earlier (braking before the collision) is kept.
        crash = self._last_crash
        return crash is not None and (
            crash - _IMPACT_LEAD_S <= event.start <= crash + self.config.crash_rearm_s
        )

    def _segment(self, name: str, ts: float) -> list[Event]:
        state = self.state
        rising = name == sig.IGNITION and state.ignition is True and self._ignition is not True
        if name == sig.IGNITION:
            self._ignition = state.ignition
        if self._trip is None:
            moved = name == sig.SPEED and state.moving and state.ignition is not False
            if rising or moved:
                log.info("trip starts at t=%.3f (%s)", ts, "ignition" if rising else "motion")
                self._trip = TripAccumulator(self.config, ts)
                self._stopped_since = None
            return []
        if name == sig.IGNITION and state.ignition is False:
            return self._end_trip(ts, "ignition off")
        if not state.stopped:  # moving, or the engine running
            self._stopped_since = None
            return []
        if self._stopped_since is None:
            self._stopped_since = ts
        elif ts - self._stopped_since >= self.config.trip_end_stationary_s:
            return self._end_trip(self._stopped_since, "stationary with the engine off")
        return []

    def _end_trip(self, at: float, why: str) -> list[Event]:
        trip = self._trip
        if trip is None:
            return []
        events: list[Event] = []
        for detector in self._trip_detectors + self._always:
            events.extend(self._attach(detector.close(at)))
        self._trip, self._stopped_since = None, None
        finished = trip.build(max(at, trip.start))
        log.info(
            "trip ends at t=%.3f (%s): %.3f km, %d events",
            at,
            why,
            finished.distance_km,
            len(finished.events),
        )
        self._done.append(finished)
        return events

    def close(self, timestamp: float | None = None) -> list[Event]:
        """End the open trip (end of data or shutdown); return the events that closed.

        ``timestamp`` defaults to the latest sample's. A trip already stationary with the
        engine off for ``trip_end_stationary_s`` ends where that stop began.
        """
        at = timestamp if timestamp is not None else self._clock
        if self._trip is None or at is None:
            return []
        if self._stopped_since is not None and (
            at - self._stopped_since >= self.config.trip_end_stationary_s
        ):
            at = self._stopped_since
        return self._end_trip(at, "end of data")

    def pop_trips(self) -> list[Trip]:
        """The trips finished since the last call, oldest first."""
        done, self._done = self._done, []
        return done

    def finish(self, timestamp: float | None = None) -> list[Trip]:
        """:meth:`close` the open trip and return every trip not yet popped."""
        self.close(timestamp)
        return self.pop_trips()
