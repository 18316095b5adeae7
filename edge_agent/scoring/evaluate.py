"""Scoring against ground truth: match detected events to labelled ones, precision and recall.

The drive simulator (``msp-agent simulate --truth``) labels every event it injects; a
labelled real drive can use the same format. An event is found when one of the same type
starts within ``tolerance_s`` of the label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError
from .model import Event


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """One labelled event: its type, start (epoch seconds) and, if labelled, severity."""

    type: str
    start: float
    severity: str | None = None


def _epoch(text: object, where: str) -> float:
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected an ISO 8601 time, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{where}: {text!r} has no time zone")
    return moment.timestamp()


def truth_events(truth: Mapping[str, object], source: str = "truth") -> list[TruthEvent]:
    """The labelled events of a truth document; ConfigError names the entry at fault."""
    entries = truth.get("events")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'events' must be a list")
    out: list[TruthEvent] = []
    for n, entry in enumerate(entries):
        where = f"{source}: events[{n}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object")
        kind, severity = entry.get("type"), entry.get("severity")
        if not isinstance(kind, str):
            raise ConfigError(f"{where}.type: expected a string, got {kind!r}")
        if severity is not None and not isinstance(severity, str):
            raise ConfigError(f"{where}.severity: expected a string, got {severity!r}")
        out.append(TruthEvent(kind, _epoch(entry.get("start"), f"{where}.start"), severity))
    return out


@dataclass(frozen=True, slots=True)
class Matching:
    """Detected events paired with labels; what was missed; what was found but not labelled."""

    matched: tuple[tuple[TruthEvent, Event], ...]
    missed: tuple[TruthEvent, ...]
    spurious: tuple[Event, ...]


def match_events(
    found: Sequence[Event], truth: Sequence[TruthEvent], tolerance_s: float = 1.0
) -> Matching:
    """Pair each label with the closest unpaired detection of its type within the tolerance."""
    free = sorted(found, key=lambda event: event.start)
    matched: list[tuple[TruthEvent, Event]] = []
    missed: list[TruthEvent] = []
    for label in sorted(truth, key=lambda label: label.start):
        candidates = [
            event
            for event in free
            if event.type == label.type and abs(event.start - label.start) <= tolerance_s
        ]
        if not candidates:
            missed.append(label)
            continue
        best = min(candidates, key=lambda event: abs(event.start - label.start))
        free.remove(best)
        matched.append((label, best))
    return Matching(tuple(matched), tuple(missed), tuple(free))


class Tally:
    """True positives, misses and false alarms per event type over many drives."""

    def __init__(self) -> None:
        self.found: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.spurious: Counter[str] = Counter()

    def add(self, matching: Matching) -> None:
        """Count one drive's matching."""
        self.found.update(label.type for label, _ in matching.matched)
        self.missed.update(label.type for label in matching.missed)
        self.spurious.update(event.type for event in matching.spurious)

    def types(self) -> list[str]:
        """Every type seen, labelled or detected, sorted."""
        return sorted(set(self.found) | set(self.missed) | set(self.spurious))

    def precision(self, kind: str) -> float | None:
        """Share of detections of ``kind`` that were labelled (None: nothing detected)."""
        detected = self.found[kind] + self.spurious[kind]
        return self.found[kind] / detected if detected else None

    def recall(self, kind: str) -> float | None:
        """Share of labels of ``kind`` that were detected (None: nothing labelled)."""
        labelled = self.found[kind] + self.missed[kind]
        return self.found[kind] / labelled if labelled else None
