"""Fuzzed logs (hypothesis, bounded): random bytes and mutated fixtures in every format.

Whatever the bytes, a log is either refused at open with IngestError, or read to its end
yielding only possible frames, with every line it did not turn into a frame counted.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.errors import IngestError
from edge_agent.frames import Frame
from edge_agent.ingest import LogSource
from tests.conftest import DATA
from tests.edge_agent.logkit import uncompressed_blf

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = (".log", ".asc", ".csv", ".trc")
RUNAWAY = 100_000  # more frames than any input here holds: a reader that does not advance
#: The start of each text fixture that is fuzzed (about 100 frames), and its header's length.
PREFIX = {suffix: (DATA / f"drive_short{suffix}").read_bytes()[:6000] for suffix in TEXT}
HEADER = {".log": 0, ".asc": 300, ".csv": 60, ".trc": 1000}
BLF = uncompressed_blf()
#: Lines no reader turns into a frame and none counts: headers, comments, blank lines.
QUIET = re.compile(r"\s*($|;|//|date\s|base\s|(no )?internal events logged|begin triggerblock"
                   r"|end triggerblock|[0-9.]+ start of measurement|timestamp,)",
                   re.IGNORECASE)  # fmt: skip

mutations = st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=3)),
                     max_size=12)  # fmt: skip


def mutate(data: bytes, edits: list[tuple[int, bytes]], start: int = 0) -> bytes:
    """``data`` with each edit's bytes written at its position (folded into start..end)."""
    out = bytearray(data)
    for pos, new in edits:
        at = start + pos % (len(out) - start)
        out[at : at + len(new)] = new
    return bytes(out)


def read(data: bytes, suffix: str) -> tuple[list[Frame], Counter[str], list[str]] | None:
    """Read ``data`` as a log of ``suffix``: None if refused at open, else the frames, the
    counts and the file's lines. Checks what must hold of any log."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            source = LogSource(path)
        except IngestError as exc:
            assert str(path) in str(exc)
            return None
        frames = list(itertools.islice(source.frames(), RUNAWAY))
    assert len(frames) < RUNAWAY
    for frame in frames:
        assert 0 <= frame.arbitration_id <= (0x1FFFFFFF if frame.is_extended_id else 0x7FF)
        assert len(frame.data) <= 64 and math.isfinite(frame.timestamp)
    assert source.counts.corrupt is not None
    assert source.counts.frames == len(frames)
    lines = io.StringIO(data.decode("utf-8", "replace"), newline=None).readlines()
    return frames, source.counts.corrupt, lines


def check_accounting(frames: list[Frame], counted: Counter[str], lines: list[str]) -> None:
    """Each line is a frame, counted, or quiet; none is two of them."""
    per_line = sum(n for reason, n in counted.items() if reason != "corrupt_data")
    loud = sum(1 for line in lines if not QUIET.match(line))
    assert loud <= len(frames) + per_line <= len(lines)


@FUZZ
@given(data=st.binary(max_size=4000), suffix=st.sampled_from(TEXT))
def test_random_bytes_as_text_logs(data: bytes, suffix: str) -> None:
    result = read(data, suffix)
    assert result is not None  # a text log always opens
    check_accounting(*result)


@FUZZ
@given(edits=mutations, suffix=st.sampled_from(TEXT), cut=st.integers(0, 6000))
def test_mutated_text_logs(edits: list[tuple[int, bytes]], suffix: str, cut: int) -> None:
    data = mutate(PREFIX[suffix], edits)[: max(cut, 1)]
    result = read(data, suffix)
    assert result is not None
    check_accounting(*result)


@FUZZ
@given(edits=mutations, suffix=st.sampled_from(TEXT))
def test_damage_after_the_header_costs_only_the_lines_it_touches(
    edits: list[tuple[int, bytes]], suffix: str
) -> None:
    clean = read(PREFIX[suffix], suffix)
    assert clean is not None
    result = read(mutate(PREFIX[suffix], edits, start=HEADER[suffix]), suffix)
    assert result is not None
    frames, counted, lines = result
    check_accounting(frames, counted, lines)
    # An edit of up to 3 bytes touches at most two lines (it may eat a newline).
    assert len(frames) >= len(clean[0]) - 2 * len(edits)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_random_bytes_as_blf(data: bytes) -> None:
    read(data, ".blf")  # refused at open, or read to its end


@FUZZ
@given(edits=mutations, cut=st.integers(0, len(BLF)))
def test_mutated_blf(edits: list[tuple[int, bytes]], cut: int) -> None:
    # The container is stored uncompressed, so edits reach the objects' headers and frames.
    result = read(mutate(BLF, edits)[:cut], ".blf")
    if result is not None:
        frames, counted, _lines = result
        assert len(frames) <= 3000
        assert set(counted) <= {"corrupt_data", "error_frame"}


@FUZZ
@given(edits=mutations)
def test_mutated_blf_object_headers_never_hang(edits: list[tuple[int, bytes]]) -> None:
    # Edits aimed at the size fields (8-11 bytes after each LOBJ) of the first objects.
    starts = [m.start() for m in re.finditer(b"LOBJ", BLF[200:3000])]
    aimed = [(200 + starts[pos % len(starts)] + 8 + pos % 4, new) for pos, new in edits]
    result = read(mutate(BLF, aimed), ".blf")
    if result is not None:
        assert len(result[0]) <= 3000
