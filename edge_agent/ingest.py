"""Frame sources: CAN log files of every format python-can reads, and live python-can buses.

A source yields :class:`~edge_agent.frames.Frame` objects for the arbitration IDs it is asked
for and counts the rest, so no decode work (and for candump text, not even a full parse) is
spent on frames nobody uses. Corrupt log lines are counted with their line number and skipped.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import can

from .errors import IngestError
from .frames import Frame
from .ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

#: Text formats python-can parses line by line: a bad line can be skipped and parsing resumed.
_TEXT_SUFFIXES = frozenset({".asc", ".trc", ".csv"})


@dataclass(slots=True)
class SourceCounts:
    """What a source saw: every frame, the ones it dropped as unwanted, and corrupt input."""

    frames: int = 0
    unmapped: int = 0
    corrupt: Counter[str] | None = None

    def __post_init__(self) -> None:
        if self.corrupt is None:
            self.corrupt = Counter()


class LogSource:
    """Frames from a CAN log file; the format is chosen by suffix as python-can does.

    candump ``.log`` files take a fast path that parses only the ID of unwanted lines. Other
    text formats resume after a line python-can cannot parse (its ASC and TRC readers already
    skip unrecognised lines themselves, logging them); binary formats (.blf, .mf4, .db) stop at
    the first corrupt object, keeping everything read before it.
    """

    def __init__(self, path: str | Path, bus: str = "log") -> None:
        self.path = Path(path)
        self.bus = bus
        self.counts = SourceCounts()
        self._warn = RateLimitedLog(log)
        if not self.path.is_file():
            raise IngestError(f"{self.path}: no such log file")
        suffix = self.path.suffix.lower()
        if suffix not in can.io.player.MESSAGE_READERS and suffix != ".gz":
            known = ", ".join(sorted(can.io.player.MESSAGE_READERS))
            raise IngestError(f"{self.path}: unknown log format {suffix!r} (known: {known})")

    def frames(self, wanted: frozenset[int] | None = None) -> Iterator[Frame]:
        """Yield frames in file order; those not in ``wanted`` (when given) are only counted."""
        if self.path.suffix.lower() == ".log":
            with self.path.open("r", encoding="ascii", errors="replace") as f:
                yield from self._candump(f, wanted)
        elif self.path.suffix.lower() in _TEXT_SUFFIXES:
            yield from self._text(wanted)
        else:
            yield from self._binary(wanted)

    def _corrupt(self, reason: str, line: int | None, detail: str) -> None:
        assert self.counts.corrupt is not None
        self.counts.corrupt[reason] += 1
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        self._warn(reason, "%s: %s skipped: %s", where, reason.replace("_", " "), detail)

    def _candump(self, f: IO[str], wanted: frozenset[int] | None) -> Iterator[Frame]:
        counts, bus = self.counts, self.bus
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) < 3:
                if parts:
                    self._corrupt("corrupt_line", lineno, repr(line[:80]))
                continue
            frame = parts[2]
            hash_at = frame.find("#")
            try:
                can_id = int(frame[:hash_at], 16) if hash_at > 0 else -1
            except ValueError:
                can_id = -1
            if can_id < 0 or can_id > 0x1FFFFFFF:
                self._corrupt("corrupt_line", lineno, repr(line[:80]))
                continue
            counts.frames += 1
            if wanted is not None and can_id not in wanted:
                counts.unmapped += 1
                continue
            payload = frame[hash_at + 1 :]
            if payload[:1] == "#":  # CAN FD: '##<flags><data>'
                payload = payload[2:]
            try:
                stamp = parts[0]
                timestamp = float(stamp[1:-1]) if stamp[0] == "(" else float(stamp)
                data = b"" if payload[:1] in ("R", "r") else bytes.fromhex(payload)
            except ValueError:
                counts.frames -= 1
                self._corrupt("corrupt_line", lineno, repr(line[:80]))
                continue
            yield Frame(timestamp, can_id, data, hash_at > 3, bus)

    def _convert(self, msg: can.Message, wanted: frozenset[int] | None) -> Frame | None:
        self.counts.frames += 1
        if wanted is not None and msg.arbitration_id not in wanted:
            self.counts.unmapped += 1
            return None
        channel = self.bus if msg.channel is None else str(msg.channel)
        return Frame(
            msg.timestamp, msg.arbitration_id, bytes(msg.data), msg.is_extended_id, channel
        )

    def _text(self, wanted: frozenset[int] | None) -> Iterator[Frame]:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        header: list[str] | None = None  # the lines before the first frame, replayed on resume
        start = 0
        while start < len(lines):
            prefix = header or []
            tracker = _LineTracker(prefix + lines[start:])
            try:
                for msg in _reader(self.path, tracker):
                    if header is None:
                        header = lines[: tracker.consumed - 1]
                    frame = self._convert(msg, wanted)
                    if frame is not None:
                        yield frame
                return
            except (ValueError, IndexError, KeyError, TypeError) as exc:
                bad = start + tracker.consumed - len(prefix)  # 1-based number of the bad line
                if header is None:
                    header = lines[: bad - 1]
                self._corrupt("corrupt_line", bad, str(exc))
                start = bad

    def _binary(self, wanted: frozenset[int] | None) -> Iterator[Frame]:
        try:
            for msg in can.LogReader(self.path):
                frame = self._convert(msg, wanted)
                if frame is not None:
                    yield frame
        except (ValueError, EOFError, OSError, IndexError, KeyError) as exc:
            self._corrupt("corrupt_data", None, f"after {self.counts.frames} frames: {exc}")


class _LineTracker(io.StringIO):
    """A text file over a list of lines that counts how many lines were handed out."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("".join(lines))
        self.consumed = 0

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        """Read one line and count it (iteration over StringIO goes through here too)."""
        line = super().readline(-1 if size is None else size)
        if line:
            self.consumed += 1
        return line


def _reader(path: Path, file: IO[str]) -> can.io.generic.MessageReader:
    suffix = path.suffix.lower()
    cls = can.io.player.MESSAGE_READERS[suffix]
    reader: can.io.generic.MessageReader = cls(file)  # type: ignore[arg-type]
    return reader
