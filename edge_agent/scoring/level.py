"""The interface every detector offers, and the threshold state machine most of them share."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from msp_protocol.scoring import EventType, Severity

from .model import Event, Location

if TYPE_CHECKING:
    from .state import VehicleState


class Detector(Protocol):
    """A state machine the scorer drives: it turns the vehicle's state into events."""

    @property
    def signals(self) -> frozenset[str]:
        """Names of the samples after which :meth:`update` must run."""
        ...

    def update(self, name: str, timestamp: float, state: VehicleState) -> Sequence[Event]:
        """Advance after a ``name`` sample at ``timestamp``; return events that closed."""
        ...

    def close(self, timestamp: float) -> Sequence[Event]:
        """End of trip: close open events at ``timestamp`` and re-arm."""
        ...


#: What a detector returns when nothing closed (shared: callers never change it).
NO_EVENTS: Sequence[Event] = ()


def closed(first: Event | None, second: Event | None = None) -> Sequence[Event]:
    """The events that are not None (:data:`NO_EVENTS` when neither is an event)."""
    if first is None:
        return NO_EVENTS if second is None else [second]
    return [first] if second is None else [first, second]


class Phase(enum.Enum):
    """Where a LevelDetector is in its cycle."""

    IDLE = "idle"  # armed, value below threshold
    PENDING = "pending"  # above threshold, not yet for sustain_s
    ACTIVE = "active"  # an event is open
    REARM = "rearm"  # event closed; waiting for the value to stay below release for rearm_s


@dataclass(frozen=True, slots=True)
class LevelRule:
    """When a watched value makes an event.

    The event opens when the value reaches ``threshold`` (``inclusive``: at it; otherwise
    strictly above) and stays there for ``sustain_s``; it closes when the value falls below
    ``threshold * (1 - hysteresis)``; a new one can open only after the value has stayed
    below that release level for ``rearm_s``. Severity is ``fixed_severity`` if given, else
    major from ``major_ratio`` * threshold and critical from ``critical_ratio`` * threshold.
    """

    event_type: EventType
    threshold: float
    sustain_s: float
    hysteresis: float
    rearm_s: float
    inclusive: bool = True
    fixed_severity: Severity | None = None
    major_ratio: float = 1.4
    critical_ratio: float = 1.8

    @property
    def release(self) -> float:
        """Value below which an open event closes."""
        return self.threshold * (1.0 - self.hysteresis)

    def reached(self, value: float) -> bool:
        """Whether ``value`` is at (or above) the threshold."""
        return value >= self.threshold if self.inclusive else value > self.threshold

    def severity(self, peak: float) -> Severity:
        """Severity of an event that peaked at ``peak``."""
        if self.fixed_severity is not None:
            return self.fixed_severity
        if peak >= self.threshold * self.critical_ratio:
            return "critical"
        if peak >= self.threshold * self.major_ratio:
            return "major"
        return "minor"


class LevelDetector:
    """One event type's state machine over one watched value (IDLE→PENDING→ACTIVE→REARM).

    Feed it the value in time order with :meth:`update`; it returns the Event when one
    closes. ``gate`` is checked only while armed: an event can begin only while the gate is
    open (e.g. "speed at start ≥ 10 km/h"), and once begun it runs its course.
    """

    __slots__ = (
        "_below_since",
        "_inclusive",
        "_location",
        "_peak",
        "_release",
        "_speed",
        "_start",
        "_threshold",
        "phase",
        "rule",
    )

    def __init__(self, rule: LevelRule) -> None:
        self.rule = rule
        self.phase = Phase.IDLE
        self._start = 0.0
        self._peak = 0.0
        self._speed = 0.0
        self._location: Location | None = None
        self._below_since: float | None = None
        # the rule's figures, read on every update
        self._threshold = rule.threshold
        self._inclusive = rule.inclusive
        self._release = rule.release

    def update(
        self,
        timestamp: float,
        value: float,
        *,
        speed_kmh: float,
        gate: bool = True,
        locate: Callable[[float], Location | None] | None = None,
    ) -> Event | None:
        """Advance to ``timestamp`` with the watched ``value``; return an event that closed.

        ``locate(timestamp)`` gives where an event starts; it is called only then.
        """
        phase = self.phase
        reached = value >= self._threshold if self._inclusive else value > self._threshold
        if phase is not Phase.IDLE:
            if phase is Phase.REARM:
                if value >= self._release:
                    self._below_since = None
                elif self._below_since is None:
                    self._below_since = timestamp
                if self._below_since is None or timestamp - self._below_since < self.rule.rearm_s:
                    return None
                self.phase = Phase.IDLE  # re-armed: this value may begin the next event
            elif phase is Phase.ACTIVE:
                if value < self._release:
                    return self._close(timestamp)
                if value > self._peak:  # noqa: PLR1730 - cheaper than max()
                    self._peak = value
                return None
            else:  # PENDING
                if not reached:
                    self.phase = Phase.IDLE
                    return None
                if value > self._peak:  # noqa: PLR1730 - cheaper than max()
                    self._peak = value
                if timestamp - self._start >= self.rule.sustain_s:
                    self.phase = Phase.ACTIVE
                return None
        if reached and gate:
            self.phase = Phase.ACTIVE if self.rule.sustain_s <= 0 else Phase.PENDING
            self._start, self._peak, self._speed = timestamp, value, speed_kmh
            self._location = locate(timestamp) if locate is not None else None
        return None

    def _close(self, timestamp: float) -> Event:
        self.phase = Phase.REARM
        self._below_since = timestamp
        return Event(
            type=self.rule.event_type,
            start=self._start,
            duration_s=max(0.0, timestamp - self._start),
            peak=self._peak,
            speed_kmh=self._speed,
            severity=self.rule.severity(self._peak),
            location=self._location,
        )

    def finish(self, timestamp: float) -> Event | None:
        """Close an open event at ``timestamp`` (end of trip or data) and re-arm."""
        event = self._close(timestamp) if self.phase is Phase.ACTIVE else None
        self.reset()
        return event

    def reset(self) -> None:
        """Drop any pending state and re-arm at once (new trip, or a gap in the data)."""
        self.phase = Phase.IDLE
        self._below_since = None
