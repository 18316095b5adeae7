"""Replay: a CAN log through the live decode path, with the frames' own clock, and its report."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .decode import DbcDecoder
from .errors import ConfigError
from .frames import Frame, FrameDecoder
from .ingest import LogSource
from .pipeline import BusRouter, DecodeStage
from .samples import Sample
from .scoring import Event, Scorer, ScoringConfig, Trip
from .signalmap import load_signal_map

if TYPE_CHECKING:  # the writer brings the outbox, SQLite and cryptography: only with --outbox
    from .writer import RecordWriter

#: Rejection reasons every report lists, even at zero, so consumers can rely on the keys.
REJECTION_REASONS = ("bad_length", "decode_error", "implausible", "corrupt_line")
#: Samples between two calls of a replay's progress callback (about a tenth of a second).
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a replay has got: bytes of the log file read so far (None where its reader
    cannot tell), of ``size`` in all, and frames read."""

    bytes_read: int | None
    size: int
    frames: int


@dataclass(slots=True)
class SignalStats:
    """Count, minimum and maximum of one canonical signal over a replay."""

    count: int = 0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        """Account for one value."""
        self.count += 1
        self.min = min(self.min, value)
        self.max = max(self.max, value)


@dataclass(slots=True)
class ReplayReport:
    """What a replay saw; ``to_json()`` is the ``msp-agent replay --json`` contract."""

    source: str
    frames: int = 0
    decoded_frames: int = 0
    unmapped: int = 0
    unmapped_bus: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    outside_dbc_range: Counter[str] = field(default_factory=Counter)
    signals: dict[str, SignalStats] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as the JSON object documented in docs/replay.md."""
        rejected = {reason: self.rejected.get(reason, 0) for reason in REJECTION_REASONS}
        rejected.update(self.rejected)
        out: dict[str, Any] = {
            "source": self.source,
            "frames": self.frames,
            "decoded_frames": self.decoded_frames,
            "ignored": {"unmapped_id": self.unmapped, "unmapped_bus": self.unmapped_bus},
            "rejected": rejected,
            "outside_dbc_range": dict(sorted(self.outside_dbc_range.items())),
            "signals": {
                name: {"count": s.count, "min": round(s.min, 6), "max": round(s.max, 6)}
                for name, s in sorted(self.signals.items())
            },
        }
        out.update(self.extra)
        return out


def paced(frames: Iterable[Frame], speed: float) -> Iterator[Frame]:
    """Yield frames no faster than their own timestamps allow, ``speed`` times real time."""
    start_wall: float | None = None
    start_ts = 0.0
    for frame in frames:
        if start_wall is None:
            start_wall, start_ts = time.monotonic(), frame.timestamp
        else:
            delay = start_wall + (frame.timestamp - start_ts) / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield frame


#: The signal maps of a replay: one map for every channel (a path), or a map per channel.
MapSpec = str | Path | Mapping[str, str | Path]


class Replay:
    """Replays one log through decode stages built from signal maps (plus extra decoders).

    ``maps`` is one map (for every channel of the log, unless the map names its own ``bus``)
    or ``{channel: map}``, which overrides what the maps name; frames of a channel no map
    claims are counted as ``unmapped_bus``. ``tz`` is the zone of an ASC header's wall time
    (default: the host's).

    :meth:`run` also scores the drive (``scoring``; by default the map's vehicle class) and,
    given a ``writer``, appends its event and trip records to that writer's outbox through
    the code the live agent uses.
    """

    def __init__(
        self,
        log: str | Path,
        maps: MapSpec,
        *,
        tz: tzinfo | None = None,
        speed: float | None = None,
        extra_decoders: Sequence[FrameDecoder] = (),
        scoring: ScoringConfig | None = None,
        writer: RecordWriter | None = None,
    ) -> None:
        self.source = LogSource(log, tz=tz)
        if isinstance(maps, str | Path):
            signal_map = load_signal_map(maps)
            by_bus = {signal_map.bus: signal_map}
        else:
            by_bus = {bus: load_signal_map(path) for bus, path in maps.items()}
        if not by_bus:
            raise ConfigError("replay: no signal map")
        self.decoders = {bus: DbcDecoder(m) for bus, m in by_bus.items()}
        stages = {bus: DecodeStage([d, *extra_decoders]) for bus, d in self.decoders.items()}
        every = stages.pop(None, None)
        self.stage = BusRouter(every_bus=every) if every is not None else BusRouter(
            {bus: stage for bus, stage in stages.items() if bus is not None}
        )
        self.speed = speed
        first = next(iter(by_bus.values()))
        self.scoring = scoring or ScoringConfig.for_class(first.vehicle_class or "car")
        self.writer = writer
        self.report = ReplayReport(source=self.source.path.name)

    def samples(self, progress: Callable[[Progress], None] | None = None) -> Iterator[Sample]:
        """Yield every decoded sample in frame order, keeping the report up to date."""
        for batch in self._batches(progress):
            yield from batch

    def _batches(self, progress: Callable[[Progress], None] | None) -> Iterator[Sequence[Sample]]:
        """The samples of each frame that has any, in frame order; the report kept up to
        date (its statistics inline: this runs once per sample of a replay)."""
        frames: Iterable[Frame] = self.source.frames(self.stage.wanted)
        if self.speed:
            frames = paced(frames, self.speed)
        stats = self.report.signals
        decode = self.stage.decode
        done, next_progress = 0, 0
        source, size = self.source, self.source.path.stat().st_size
        for frame in frames:
            batch = decode(frame)
            if not batch:
                continue
            for sample in batch:
                value = float(sample.value)
                entry = stats.get(sample.name)
                if entry is None:
                    entry = stats[sample.name] = SignalStats()
                entry.count += 1
                if value < entry.min:  # noqa: PLR1730 - a call of min() costs more
                    entry.min = value
                if value > entry.max:  # noqa: PLR1730
                    entry.max = value
            done += len(batch)
            if progress is not None and done > next_progress:
                progress(Progress(source.bytes_read(), size, source.counts.frames))
                next_progress += _PROGRESS_EVERY
            yield batch
        self._finish()
        if progress is not None:
            progress(Progress(size, size, source.counts.frames))

    def _finish(self) -> None:
        counts, report = self.source.counts, self.report
        report.frames = counts.frames
        report.unmapped = counts.unmapped + self.stage.unmapped
        report.decoded_frames = self.stage.decoded_frames
        report.rejected = self.stage.rejected()
        report.unmapped_bus = self.stage.unmapped_bus
        report.outside_dbc_range = Counter()
        for decoder in self.decoders.values():
            report.outside_dbc_range.update(decoder.outside_dbc_range)
        assert counts.corrupt is not None
        report.rejected.update(counts.corrupt)

    def run(
        self,
        progress: Callable[[Progress], None] | None = None,
        *,
        tap: Callable[[Sequence[Sample]], None] | None = None,
    ) -> ReplayReport:
        """Replay and score the whole log; return the report with its trips and events.

        ``tap``, when given, sees every frame's samples before scoring does (the trip report
        draws its traces from them)."""
        scorer = Scorer(self.scoring)
        events: list[Event] = []
        trips: list[Trip] = []
        feed = scorer.feed
        for batch in self._batches(progress):
            if tap is not None:
                tap(batch)
            for sample in batch:
                closed = feed(sample)
                if closed:
                    self._record(events, closed, trips, [])
                if not scorer.in_trip:
                    finished = scorer.pop_trips()
                    if finished:
                        self._record(events, [], trips, finished)
        self._record(events, scorer.close(), trips, scorer.pop_trips())
        self.report.extra["trips"] = [trip.to_json() for trip in trips]
        self.report.extra["events"] = [
            {key: value for key, value in event.to_json().items() if key != "location"}
            for event in events
        ]
        if scorer.rejected:
            self.report.extra["scoring_rejected"] = dict(scorer.rejected)
        return self.report

    def _record(
        self, events: list[Event], new_events: list[Event], trips: list[Trip], new_trips: list[Trip]
    ) -> None:
        events.extend(new_events)
        trips.extend(new_trips)
        if self.writer is not None:
            self.writer.events(new_events)
            self.writer.trips(new_trips)
