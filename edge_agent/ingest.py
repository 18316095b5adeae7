"""Frame sources: CAN log files of every format python-can reads, and live python-can buses.

A source yields :class:`~edge_agent.frames.Frame` objects for the arbitration IDs it is asked
for and counts the rest, so no decode work (and for candump text, not even a full parse) is
spent on frames nobody uses.

Nothing in a log stops or hangs the stream. A file that cannot be opened as its format at all
(missing, an unknown suffix, a BLF without its header, a gzip file that is not one) is refused
with :class:`~edge_agent.errors.IngestError` when the source is made. Everything after that
is counted in :attr:`SourceCounts.corrupt`, logged with its line number (text) or byte offset
(BLF), and skipped:

``corrupt_line``
    a text line the format's reader refused (or a frame it read with an impossible ID,
    length or timestamp); reading resumes at the next line.
``skipped_line``
    a text line the reader passed over without a frame: binary junk, a damaged frame it no
    longer recognises, or an event it does not read (ASC statistics, TRC status lines).
    Headers, comments and blank lines are not counted.
``error_frame``
    a CAN error frame recorded in the log (it carries no data).
``corrupt_data``
    unreadable bytes in a binary or compressed log; everything before them is kept.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import logging
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import can
from can.io.blf import (
    LOG_CONTAINER,
    LOG_CONTAINER_STRUCT,
    NO_COMPRESSION,
    OBJ_HEADER_BASE_STRUCT,
    ZLIB_DEFLATE,
    BLFParseError,
)

from .errors import IngestError
from .frames import Frame
from .ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

#: Text formats python-can parses line by line: a bad line can be skipped and parsing resumed.
_TEXT_FORMATS = frozenset({".asc", ".trc", ".csv"})
#: Options of python-can's text readers: ASC timestamps from the header's date, not from 0.
_TEXT_OPTIONS: dict[str, dict[str, Any]] = {".asc": {"relative_timestamp": False}}
#: Longest line read as one; anything longer is junk (a real frame line is under 400 chars).
MAX_LINE = 4096
#: Lines kept from the start of a text log to bring a restarted reader back to its state.
_HEADER_LINES = 64
#: A restarted ASC reader's header parser ends at this line instead of eating the next one.
_ASC_END_OF_HEADER = "no internal events logged\n"
#: How each reason for skipping input is logged.
_SAID = {"corrupt_line": "corrupt line skipped", "skipped_line": "not a frame, skipped",
         "error_frame": "error frame skipped", "corrupt_data": "corrupt data, reading stopped"}
#: Lines a text format's reader passes over by design (not counted as skipped).
_BENIGN = {
    ".asc": re.compile(
        r"\s*($|//|date\s|base\s|(no\s+)?internal\s+events\s+logged|begin\s+triggerblock"
        r"|end\s+triggerblock|\d+\.\d+\s+start\s+of\s+measurement)",
        re.IGNORECASE,
    ),
    ".trc": re.compile(r"\s*($|;)"),
    ".csv": re.compile(r"timestamp,"),
}
_BLF_OBJECT_HEADER = 16  # LOBJ, header size, version, object size, object type
#: Largest BLF object or inflated container read (writers make containers of 128 KiB).
_BLF_MAX_OBJECT = 16 << 20
#: Where an object smaller than its header might start (then the container is walked).
_SMALL_OBJECT = re.compile(rb"LOBJ.{4}[\x00-\x0f]\x00\x00\x00", re.DOTALL)
#: Distinct candump ID texts whose parse is remembered (a bus has at most a few hundred).
_KNOWN_IDS = 4096
#: What reading a (compressed) text file can raise.
_READ_ERRORS = (OSError, EOFError, zlib.error)


@dataclass(slots=True)
class SourceCounts:
    """What a source saw: every frame, the ones it dropped as unwanted, and input it skipped
    (by reason: ``corrupt_line``, ``skipped_line``, ``error_frame``, ``corrupt_data``)."""

    frames: int = 0
    unmapped: int = 0
    corrupt: Counter[str] | None = None

    def __post_init__(self) -> None:
        if self.corrupt is None:
            self.corrupt = Counter()


class LogSource:
    """Frames from a CAN log file; the format is chosen by suffix as python-can does
    (``.gz`` by the suffix before it, e.g. ``drive.asc.gz``).

    Each frame's ``bus`` is ``bus`` when given (the service replays a log as one of its named
    buses), else the log's own channel: the candump interface name, or python-can's channel
    (``str(msg.channel)``; python-can numbers Vector channels from 0, so ASC/BLF "CAN 1" is
    ``"0"``), or ``"log"`` where the format records none. Timestamps are the wall clock the
    log records: ASC files are read with their header's date (``relative_timestamp=False``),
    a wall time in the zone ``tz`` (default: the host's), as Vector tools write it; BLF and
    TRC headers are read as python-can reads them (UTC).

    candump ``.log`` files take a fast path that parses only the ID of unwanted lines. Other
    text formats resume after a line python-can cannot parse; binary formats (.blf, .mf4,
    .db) stop at the first corrupt object, keeping everything read before it. Raises
    IngestError, naming the file, if the file cannot be read as its format at all.
    """

    def __init__(self, path: str | Path, bus: str | None = None, tz: tzinfo | None = None) -> None:
        self.path = Path(path)
        self.bus = bus
        self.tz = tz
        self._shifts: dict[float, float] = {}
        self.counts = SourceCounts()
        self._warn = RateLimitedLog(log)
        self._stored: IO[bytes] | None = None  # the file on disk being read, for bytes_read()
        try:
            is_file = self.path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise IngestError(f"{self.path}: cannot open log file: {exc.strerror}") from None
        if not is_file:
            raise IngestError(f"{self.path}: no such log file")
        suffix = self.path.suffix.lower()
        self.gzipped = suffix == ".gz"
        self.format = Path(self.path.stem).suffix.lower() if self.gzipped else suffix
        if self.format not in can.io.player.MESSAGE_READERS:
            known = ", ".join(sorted(can.io.player.MESSAGE_READERS))
            raise IngestError(f"{self.path}: unknown log format {self.format!r} (known: {known}"
                              ", each also gzip-compressed as .gz)")  # fmt: skip
        if self.gzipped and self.format in (".db", ".mf4"):
            raise IngestError(f"{self.path}: a {self.format} log cannot be read compressed")
        self._probe()

    def _probe(self) -> None:
        """Refuse, before anything starts, a file that is not its format at all."""
        if self.format == ".mf4" and importlib.util.find_spec("asammdf") is None:
            raise IngestError(f"{self.path}: .mf4 logs need the asammdf package: "
                              "pip install 'msp-gateway[mf4]' (or asammdf)")  # fmt: skip
        try:
            if self.gzipped:
                with gzip.open(self.path, "rb") as f:
                    f.read(1)
            if self.format in _TEXT_FORMATS or self.format == ".log":
                with self.path.open("rb"):
                    return
            with self._open_binary() as reader:
                next(iter(reader), None)
        except Exception as exc:  # noqa: BLE001 - python-can's readers raise anything
            raise IngestError(f"{self.path}: not a readable {self.format} log: "
                              f"{_describe(exc)}") from None  # fmt: skip

    def bytes_read(self) -> int | None:
        """How far reading has got into the file as stored (compressed bytes of a ``.gz``),
        for a progress bar; None before reading starts, after it ends, or where the format's
        reader does not tell (.mf4, .db)."""
        stored = self._stored
        if stored is None:
            return None
        try:
            return stored.tell()
        except (OSError, ValueError):  # closed
            return None

    def _open_text(self) -> IO[str]:
        encoding = "ascii" if self.format == ".log" else "utf-8"
        if self.gzipped:
            f = gzip.open(self.path, "rt", encoding=encoding, errors="replace")  # noqa: SIM115
        else:  # the caller closes it
            f = self.path.open("r", encoding=encoding, errors="replace")
        self._stored = _stored_file(f)
        return f

    def _open_binary(self) -> can.io.generic.MessageReader:
        reader: can.io.generic.MessageReader
        if self.format == ".blf":
            reader = _BlfReader(cast("BinaryIO", gzip.open(self.path, "rb"))  # noqa: SIM115
                                if self.gzipped else self.path)  # fmt: skip
        else:
            reader = can.LogReader(self.path)
        self._stored = _stored_file(getattr(reader, "file", None))
        return reader

    def frames(self, wanted: frozenset[int] | None = None) -> Iterator[Frame]:
        """Yield frames in file order; those not in ``wanted`` (when given) are only counted.
        Never raises: what cannot be read is counted in :attr:`counts` and skipped."""
        if self.format in _TEXT_FORMATS or self.format == ".log":
            try:
                f = self._open_text()
            except OSError as exc:
                self._corrupt("corrupt_data", None, f"cannot open: {exc.strerror}")
                return
            with f:
                if self.format == ".log":
                    yield from self._candump(f, wanted)
                else:
                    yield from self._text(f, wanted)
        else:
            yield from self._binary(wanted)

    def _corrupt(self, reason: str, line: int | None, detail: str) -> None:
        assert self.counts.corrupt is not None
        self.counts.corrupt[reason] += 1
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        self._warn(reason, "%s: %s: %s", where, _SAID[reason], detail)

    def _candump(self, f: IO[str], wanted: frozenset[int] | None) -> Iterator[Frame]:
        counts, forced, lineno = self.counts, self.bus, 0
        # ID text with its '#' -> (ID, wanted): a log repeats a few hundred IDs millions of
        # times, so each is parsed and checked once. Bounded: junk IDs cannot grow it for ever.
        known: dict[str, tuple[int, bool]] = {}
        # counted here and written back before every yield and at the end: the counts are
        # current whenever anyone else runs
        frames = counts.frames
        unmapped = counts.unmapped
        try:
            for line in iter(functools.partial(f.readline, MAX_LINE), ""):
                lineno += 1
                if len(line) == MAX_LINE and line[-1] != "\n":
                    self._long_line(f, lineno)
                    continue
                parts = line.split()
                if len(parts) < 3:
                    if parts:
                        self._corrupt("corrupt_line", lineno, repr(line[:80]))
                    continue
                frame = parts[2]
                hash_at = frame.find("#")
                id_text = frame[: hash_at + 1]  # with its '#': "" when there is none
                seen = known.get(id_text)
                if seen is None:
                    try:
                        can_id = int(id_text[:-1], 16) if hash_at > 0 else -1
                    except ValueError:
                        can_id = -1
                    if can_id < 0 or can_id > (0x7FF if hash_at <= 3 else 0x1FFFFFFF):
                        # SocketCAN's CAN_ERR_FLAG
                        error = hash_at == 8 and can_id & 0x20000000
                        self._corrupt("error_frame" if error else "corrupt_line", lineno,
                                      repr(line[:80]))  # fmt: skip
                        continue
                    seen = (can_id, wanted is None or can_id in wanted)
                    if len(known) < _KNOWN_IDS:
                        known[id_text] = seen
                can_id, use = seen
                frames += 1
                if not use:
                    unmapped += 1
                    continue
                payload = frame[hash_at + 1 :]
                if payload[:1] == "#":  # CAN FD: '##<flags><data>'
                    payload = payload[2:]
                try:
                    stamp = parts[0]
                    timestamp = float(stamp[1:-1]) if stamp[0] == "(" else float(stamp)
                    data = b"" if payload[:1] in ("R", "r") else bytes.fromhex(payload)
                except ValueError:
                    timestamp, data = math.nan, b""
                if not math.isfinite(timestamp) or len(data) > 64:
                    frames -= 1
                    self._corrupt("corrupt_line", lineno, repr(line[:80]))
                    continue
                counts.frames, counts.unmapped = frames, unmapped
                yield Frame(timestamp, can_id, data, hash_at > 3, forced or parts[1])
        except _READ_ERRORS as exc:  # a damaged gzip stream, an I/O error
            self._corrupt("corrupt_data", lineno + 1, _describe(exc))
        finally:
            counts.frames, counts.unmapped = frames, unmapped

    def _long_line(self, f: IO[str], lineno: int) -> None:
        """Skip the rest of a line longer than :data:`MAX_LINE` and count it."""
        try:
            while (rest := f.readline(MAX_LINE)) and rest[-1] != "\n":
                pass
        except _READ_ERRORS:
            pass  # the read error shows again at the next line
        self._corrupt("corrupt_line", lineno, f"longer than {MAX_LINE} characters")

    def _convert(self, msg: can.Message, wanted: frozenset[int] | None, reason: str,
                 line: int | None) -> Frame | None:  # fmt: skip
        if msg.is_error_frame:
            self._corrupt("error_frame", line, f"at {msg.timestamp}")
            return None
        can_id, data, timestamp = msg.arbitration_id, bytes(msg.data), msg.timestamp
        limit = 0x1FFFFFFF if msg.is_extended_id else 0x7FF
        if not 0 <= can_id <= limit or len(data) > 64 or not math.isfinite(timestamp):
            self._corrupt(reason, line, f"impossible frame: ID {can_id:#x}, {len(data)} "
                          f"bytes, timestamp {timestamp}")  # fmt: skip
            return None
        self.counts.frames += 1
        if wanted is not None and can_id not in wanted:
            self.counts.unmapped += 1
            return None
        channel = self.bus or ("log" if msg.channel is None else str(msg.channel))
        return Frame(timestamp, can_id, data, msg.is_extended_id, channel)

    def _text(self, f: IO[str], wanted: frozenset[int] | None) -> Iterator[Frame]:
        """python-can's reader for the format, restarted after every line it raises on.

        A restarted reader is first handed the log's header again (the lines before its first
        frame, at most :data:`_HEADER_LINES`) so it parses the rest as the first one did.
        Every restart consumes at least one new line, so this ends.
        """
        lines = _Lines(f, self._skipped, self._corrupt)
        header: list[str] | None = None
        cls = _AscReader if self.format == ".asc" else can.io.player.MESSAGE_READERS[self.format]
        while True:
            replay = list(header or [])
            if header is not None and self.format == ".asc":
                replay.append(_ASC_END_OF_HEADER)
            lines.restart(replay)
            started = lines.number
            try:
                reader = cls(lines, **_TEXT_OPTIONS.get(self.format, {}))  # type: ignore[arg-type]
                messages = iter(reader)
            except Exception as exc:  # noqa: BLE001 - python-can's readers raise anything
                self._corrupt("corrupt_data", None, _describe(exc))
                return
            while True:
                try:
                    msg = next(messages, None)
                except Exception as exc:  # noqa: BLE001 - python-can's readers raise anything
                    bad = lines.number
                    if header is None:
                        header = lines.header(before=bad)
                    if not lines.pending:  # it refused the header, or at the end: nothing to resume
                        if bad > started:  # not the refusal of a line already counted
                            self._corrupt("corrupt_data", bad, _describe(exc))
                        return
                    lines.pending = False
                    self._corrupt("corrupt_line", bad, _describe(exc))
                    break  # restart the reader after the bad line
                if msg is None:
                    lines.finish()
                    return
                line = lines.number
                if header is None:
                    header = lines.header(before=line)
                lines.pending = False
                if self.tz is not None and self.format == ".asc":
                    msg.timestamp += self._zone_shift(cast("_AscReader", reader).start_time)
                frame = self._convert(msg, wanted, "corrupt_line", line)
                if frame is not None:
                    yield frame

    def _zone_shift(self, start: float) -> float:
        """Seconds to add to python-can's ASC timestamps (the header's wall time read in the
        host's zone) to read that wall time in :attr:`tz` instead."""
        if not start:  # no date in the header: relative timestamps, nothing to shift
            return 0.0
        shift = self._shifts.get(start)
        if shift is None:
            wall = datetime.fromtimestamp(start)  # the header's wall time, as python-can read it
            shift = self._shifts[start] = wall.replace(tzinfo=self.tz).timestamp() - start
        return shift

    def _skipped(self, line: int, text: str) -> None:
        """A line python-can's reader passed over without a frame."""
        if not _BENIGN[self.format].match(text):
            self._corrupt("skipped_line", line, repr(text[:80]))

    def _binary(self, wanted: frozenset[int] | None) -> Iterator[Frame]:
        try:
            reader = self._open_binary()
            messages = iter(reader)
        except Exception as exc:  # noqa: BLE001 - the file changed since it was probed
            self._corrupt("corrupt_data", None, _describe(exc))
            return
        try:
            while True:
                try:
                    msg = next(messages, None)
                except Exception as exc:  # noqa: BLE001 - python-can's readers raise anything
                    self._corrupt("corrupt_data", None, f"after {self.counts.frames} frames"
                                  f"{_offset(reader)}: {_describe(exc)}")  # fmt: skip
                    return
                if msg is None:
                    return
                frame = self._convert(msg, wanted, "corrupt_data", None)
                if frame is not None:
                    yield frame
        finally:
            with contextlib.suppress(Exception):  # closing a damaged file
                reader.stop()


class _Lines:
    """The file python-can's text reader reads: the log's lines one at a time, numbered.

    It remembers the first lines (the header, replayed to a restarted reader), notices lines
    the reader passed over without a frame (``pending`` when the next is asked for), skips
    over-long lines and ends the reader at a read error (a damaged gzip stream), counting it.
    """

    def __init__(self, file: IO[str], skipped: Callable[[int, str], None],
                 corrupt: Callable[[str, int | None, str], None]) -> None:  # fmt: skip
        self._read = functools.partial(file.readline, MAX_LINE)
        self._file = file
        self._skipped = skipped
        self._corrupt = corrupt
        self._replay: list[str] = []
        self._recorded: list[tuple[int, str]] | None = []
        self._last = ""
        self._failed = False
        self.number = 0  # lines read from the file so far
        self.pending = False  # the last line read has not (yet) given a frame

    def restart(self, replay: list[str]) -> None:
        """Hand ``replay`` out first (not counted as lines of the file)."""
        self._replay = replay[::-1]

    def header(self, before: int) -> list[str]:
        """The remembered lines before line ``before``; stop remembering."""
        recorded, self._recorded = self._recorded or [], None
        return [text for number, text in recorded if number < before]

    def finish(self) -> None:
        """The reader ended: account for the last line."""
        if self.pending:
            self.pending = False
            self._skipped(self.number, self._last)

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._replay:
            return self._replay.pop()
        self.finish()
        while not self._failed:
            try:
                line = self._read()
            except _READ_ERRORS as exc:  # a damaged gzip stream, an I/O error
                self._failed = True
                self._corrupt("corrupt_data", self.number + 1, _describe(exc))
                break
            if not line:
                break
            self.number += 1
            if len(line) == MAX_LINE and line[-1] != "\n":
                self._skip_rest()
                continue
            if self._recorded is not None and len(self._recorded) < _HEADER_LINES:
                self._recorded.append((self.number, line))
            self.pending, self._last = True, line
            return line
        raise StopIteration

    def _skip_rest(self) -> None:
        try:
            while (rest := self._read()) and rest[-1] != "\n":
                pass
        except _READ_ERRORS:
            pass  # the read error shows at the next line
        self._corrupt("corrupt_line", self.number, f"longer than {MAX_LINE} characters")

    def readline(self, size: int = -1) -> str:
        """The next line, or "" at the end (python-can reads some headers this way)."""
        return next(self, "")

    def close(self) -> None:
        """python-can's reader closes its file when it ends; the source closes the real one."""


class _AscReader(can.ASCReader):
    """python-can's ASC reader, reading the header's date as the wall clock of the log; a date
    it cannot read leaves the timestamps relative to the start of the log, with a warning
    (python-can would raise, and the whole trigger block would be lost)."""

    def __init__(self, file: Any, **options: Any) -> None:
        super().__init__(file, **options)
        self._said = False

    def _datetime_to_timestamp(self, datetime_string: str) -> float:  # type: ignore[override]
        try:
            return can.ASCReader._datetime_to_timestamp(datetime_string)
        except ValueError:
            if not self._said:
                self._said = True
                log.warning("ASC date %r unreadable: timestamps relative to the start of the log",
                            datetime_string[:60])  # fmt: skip
            return 0.0


class _BlfReader(can.BLFReader):
    """python-can's BLF reader with the checks it lacks: an object smaller than its own
    header (python-can's parse loop never gets past one of size 0), an object or container
    cut short, beyond :data:`_BLF_MAX_OBJECT` or an unknown compression method are
    BLFParseErrors naming the byte offset, instead of a hang, a flood of memory or silence."""

    def __iter__(self) -> Generator[can.Message, None, None]:
        header = OBJ_HEADER_BASE_STRUCT
        while True:
            at = self.file.tell()
            data = self.file.read(header.size)
            if not data:
                break
            if len(data) < header.size:
                raise BLFParseError(f"object header cut short at byte {at}")
            signature, _, _, size, kind = header.unpack(data)
            if signature != b"LOBJ":
                raise BLFParseError(f"no object at byte {at}")
            if not header.size <= size <= _BLF_MAX_OBJECT:
                raise BLFParseError(f"object of {size} bytes at byte {at}")
            body = self.file.read(size - header.size)
            short = None
            if len(body) < size - header.size:  # the frames in what is there are still read
                short = f"object at byte {at} cut short ({header.size + len(body)} of {size} bytes)"
            self.file.read(size % 4)  # padding
            if kind != LOG_CONTAINER:
                if short:
                    raise BLFParseError(short)
                continue  # python-can reads frames only inside containers
            method, _ = LOG_CONTAINER_STRUCT.unpack_from(body)
            packed = body[LOG_CONTAINER_STRUCT.size :]
            if method == NO_COMPRESSION:
                data = packed
            elif method == ZLIB_DEFLATE:
                inflater = zlib.decompressobj()
                data = inflater.decompress(packed, _BLF_MAX_OBJECT)
                if inflater.unconsumed_tail:
                    raise BLFParseError(f"container at byte {at} inflates beyond "
                                        f"{_BLF_MAX_OBJECT} bytes")  # fmt: skip
            else:
                raise BLFParseError(f"container at byte {at}: unknown compression {method}")
            yield from self._parse_container(data)
            if short:
                raise BLFParseError(short)
        if b"LOBJ" in self._tail:
            raise BLFParseError(f"the last object is cut short ({len(self._tail)} bytes)")
        self.stop()

    def _parse_container(self, data: bytes) -> Iterator[can.Message]:
        joined = self._tail + data if self._tail else data
        stuck = None if _SMALL_OBJECT.search(joined) is None else _stuck_object(joined)
        if stuck is None:
            yield from super()._parse_container(data)
            return
        self._tail = b""
        yield from super()._parse_container(joined[:stuck])
        raise BLFParseError(f"object of impossible size at offset {stuck} of a container")


def _stuck_object(data: bytes) -> int | None:
    """Where in a container python-can's BLF loop would meet an object smaller than its
    header (it walks objects exactly so: ``LOBJ`` within 8 bytes, then the object's size)."""
    pos, end = 0, len(data)
    while True:
        at = data.find(b"LOBJ", pos, pos + 8)
        if at < 0 or at + _BLF_OBJECT_HEADER > end:
            return None
        size = int.from_bytes(data[at + 8 : at + 12], "little")
        if size < _BLF_OBJECT_HEADER:
            return at
        if at + size > end:
            return None
        pos = at + size


def _stored_file(file: object) -> IO[bytes] | None:
    """The binary file on disk under ``file`` (a text wrapper's buffer, a gzip stream's
    compressed file), or None when it has none that tells its position."""
    inner = getattr(file, "buffer", file)
    if isinstance(inner, gzip.GzipFile):
        inner = inner.fileobj
    return cast("IO[bytes]", inner) if callable(getattr(inner, "tell", None)) else None


def _offset(reader: Any) -> str:
    """How far a binary reader had read its file, where it can tell."""
    try:
        return f" (read up to byte {reader.file.tell()})"
    except Exception:  # noqa: BLE001
        return ""


def _describe(exc: BaseException) -> str:
    """``Type: message`` (``struct.error``, ``zlib.error``: the module named too)."""
    name = type(exc).__name__
    if name == "error":
        name = f"{type(exc).__module__}.error"
    text = str(exc)
    return f"{name}: {text[:200]}" if text else name
