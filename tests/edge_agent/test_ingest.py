"""Log ingest: every python-can format, the candump fast path, filtering and corrupt input."""

from __future__ import annotations

import gzip
import importlib.util
import io
import itertools
import json
import logging
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import can
import pytest

from edge_agent.errors import IngestError
from edge_agent.frames import Frame
from edge_agent.ingest import MAX_LINE, LogSource
from tests.conftest import DATA, DEMO_MAP
from tests.data.make_fixtures import fuzzed_asc
from tests.edge_agent.logkit import empty_object, uncompressed_blf

FORMATS = (".log", ".asc", ".blf", ".trc", ".csv")


def _reference() -> list[can.Message]:
    return list(can.LogReader(DATA / "drive_short.log"))


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_format_yields_the_same_frames(suffix: str) -> None:
    source = LogSource(DATA / f"drive_short{suffix}")
    frames = list(source.frames())
    reference = _reference()
    assert len(frames) == len(reference) == source.counts.frames == 3000
    assert [(f.arbitration_id, f.data) for f in frames] == [
        (m.arbitration_id, bytes(m.data)) for m in reference
    ]
    assert [f.is_extended_id for f in frames] == [m.is_extended_id for m in reference]
    assert sum(f.is_extended_id for f in frames) > 0


@pytest.mark.parametrize("suffix", [".log", ".blf", ".csv"])
def test_timestamps_are_the_frames_own(suffix: str) -> None:
    frames = list(LogSource(DATA / f"drive_short{suffix}").frames())
    reference = _reference()
    assert frames[0].timestamp == pytest.approx(reference[0].timestamp, abs=1e-5)
    assert frames[-1].timestamp == pytest.approx(reference[-1].timestamp, abs=1e-5)


@pytest.mark.parametrize("suffix", FORMATS)
def test_unwanted_ids_are_counted_not_yielded(suffix: str) -> None:
    wanted = frozenset({0x0B4, 0x18FEC117})
    source = LogSource(DATA / f"drive_short{suffix}")
    frames = list(source.frames(wanted))
    expected = sum(m.arbitration_id in wanted for m in _reference())
    assert len(frames) == expected > 0
    assert {f.arbitration_id for f in frames} <= wanted
    assert source.counts.unmapped == 3000 - expected


def test_corrupt_candump_lines_are_counted_with_line_numbers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = LogSource(DATA / "malformed.log")
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames(frozenset({0x0B4, 0x18FEC117})))
    # Lines 3 (no frame), 4 (bad ID) and 5 (bad hex) are corrupt; the blank line 7 is not.
    assert source.counts.corrupt == {"corrupt_line": 3}
    assert "malformed.log:3" in caplog.text
    assert [f.data.hex() for f in frames if f.arbitration_id == 0x0B4] == [
        "e803320000000000",
        "e8033200",
        "ffff320000000000",
        "d007320000000000",
    ]
    assert source.counts.frames == 6
    assert source.counts.unmapped == 1  # 0x7FF


def test_corrupt_csv_line_is_skipped_and_parsing_resumes(tmp_path: Path) -> None:
    lines = (DATA / "drive_short.csv").read_text().splitlines(keepends=True)
    lines.insert(100, "garbage,,\n")
    lines.insert(200, "1795654800.5,0xZZ,0,0,0,8,AAAAAAAAAAA=\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines))
    source = LogSource(bad)
    frames = list(source.frames())
    assert len(frames) == 3000
    assert source.counts.corrupt == {"corrupt_line": 2}


def test_truncated_blf_keeps_what_came_before(tmp_path: Path) -> None:
    whole = (DATA / "drive_short.blf").read_bytes()
    cut = tmp_path / "cut.blf"
    cut.write_bytes(whole[: len(whole) // 2])
    source = LogSource(cut)
    frames = list(source.frames())
    assert 0 < len(frames) < 3000
    assert all(isinstance(f, Frame) for f in frames)
    assert source.counts.corrupt == {"corrupt_data": 1}  # python-can alone says nothing


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"")
    with pytest.raises(IngestError, match=r"unknown log format '\.pcap'"):
        LogSource(tmp_path / "x.pcap")
    with pytest.raises(IngestError, match="no such log file"):
        LogSource(tmp_path / "missing.log")


# --- hostile and damaged logs: every reader ends, counts what it skipped, refuses only at open


def _lines(path: Path) -> list[str]:
    """The file's lines as a text file reads them (universal newlines)."""
    return io.StringIO(path.read_bytes().decode("utf-8", "replace"), newline=None).readlines()


_NOT_COUNTED = re.compile(
    r"\s*($|//|date |base |(no )?internal events logged|begin triggerblock|end triggerblock"
    r"|[0-9.]+ start of measurement)", re.IGNORECASE)  # fmt: skip


def test_the_fuzzed_asc_fixture_is_what_its_generator_makes() -> None:
    assert (DATA / "fuzzed.asc").read_bytes() == fuzzed_asc()
    assert 5800 < len(fuzzed_asc()) <= 6000


def test_fuzzed_asc_ends_and_every_line_is_accounted_for(caplog: pytest.LogCaptureFixture) -> None:
    # The first release looped for ever here: a form feed in the header made the resume loop
    # (str.splitlines against readline) restart at the same line again and again.
    source = LogSource(DATA / "fuzzed.asc")
    with caplog.at_level(logging.WARNING, logger="edge_agent.ingest"):
        frames = list(source.frames())
    assert source.counts.corrupt is not None
    corrupt, skipped = source.counts.corrupt["corrupt_line"], source.counts.corrupt["skipped_line"]
    assert corrupt > 0 and skipped > 0 and len(frames) == source.counts.frames > 50
    lines = _lines(DATA / "fuzzed.asc")
    quiet = sum(1 for line in lines if _NOT_COUNTED.match(line))
    assert len(frames) + corrupt + skipped + quiet == len(lines)
    assert re.search(r"fuzzed\.asc:\d+: corrupt line skipped", caplog.text)
    assert re.search(r"fuzzed\.asc:\d+: not a frame, skipped", caplog.text)


def test_replay_of_the_fuzzed_asc_finishes_through_the_cli() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "replay", str(DATA / "fuzzed.asc"),
         "--map", str(DEMO_MAP), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["frames"] > 50
    assert report["rejected"]["corrupt_line"] > 0 and report["rejected"]["skipped_line"] > 0


def test_binary_junk_in_a_text_log_is_counted_line_by_line(tmp_path: Path) -> None:
    junk = random.Random(3).randbytes(4000)
    for suffix in (".asc", ".trc", ".csv", ".log"):
        path = tmp_path / f"junk{suffix}"
        path.write_bytes(junk)
        source = LogSource(path)
        assert list(source.frames()) == []
        assert source.counts.corrupt is not None
        counted = source.counts.corrupt["corrupt_line"] + source.counts.corrupt["skipped_line"]
        blank = sum(1 for line in _lines(path) if not line.strip())
        assert counted == len(_lines(path)) - blank, suffix


def test_an_empty_or_junk_blf_is_refused_at_open(tmp_path: Path) -> None:
    (tmp_path / "empty.blf").write_bytes(b"")
    with pytest.raises(IngestError, match=r"empty\.blf: not a readable \.blf log: struct\.error"):
        LogSource(tmp_path / "empty.blf")
    (tmp_path / "junk.blf").write_bytes(bytes(range(256)) * 16)
    with pytest.raises(IngestError, match=r"junk\.blf: not a readable \.blf log"):
        LogSource(tmp_path / "junk.blf")


def test_an_empty_blf_is_a_usage_error_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "empty.blf").write_bytes(b"")
    run = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "replay", str(tmp_path / "empty.blf"),
         "--map", str(DEMO_MAP)], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "empty.blf: not a readable .blf log" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("version", [1, 7])
def test_a_blf_object_of_size_zero_ends_the_read(tmp_path: Path, version: int) -> None:
    # python-can's loop stays on such an object for ever: yielding the same frame again and
    # again (header version 1), or silently (an unknown version).
    path = tmp_path / "zero.blf"
    path.write_bytes(uncompressed_blf(empty_object(version)))
    source = LogSource(path)
    frames = list(itertools.islice(source.frames(), 10_000))
    assert len(frames) == 2  # the two objects before it
    assert source.counts.corrupt == {"corrupt_data": 1}


def test_junk_after_a_blf_header_is_refused_and_damage_later_is_counted(tmp_path: Path) -> None:
    whole = (DATA / "drive_short.blf").read_bytes()
    header_size = struct.unpack_from("<4sL", whole)[1]
    (tmp_path / "a.blf").write_bytes(whole[:header_size] + b"\x17" * 300)
    with pytest.raises(IngestError, match=r"a\.blf: not a readable \.blf log: BLFParseError"):
        LogSource(tmp_path / "a.blf")
    (tmp_path / "b.blf").write_bytes(whole + b"LOBJ" + b"\xff" * 60)
    source = LogSource(tmp_path / "b.blf")
    assert len(list(source.frames())) == 3000
    assert source.counts.corrupt == {"corrupt_data": 1}


def test_gzip_logs_read_as_their_inner_format(tmp_path: Path) -> None:
    for suffix in (".log", ".asc", ".blf"):
        path = tmp_path / f"drive{suffix}.gz"
        path.write_bytes(gzip.compress((DATA / f"drive_short{suffix}").read_bytes()))
        source = LogSource(path)
        assert len(list(source.frames())) == 3000 and source.counts.corrupt == {}, suffix
    cut = tmp_path / "cut.asc.gz"
    cut.write_bytes(gzip.compress((DATA / "drive_short.asc").read_bytes())[:20_000])
    source = LogSource(cut)
    assert 0 < len(list(source.frames())) < 3000
    assert source.counts.corrupt == {"corrupt_data": 1}
    (tmp_path / "not.log.gz").write_bytes(b"plain text, not gzip\n")
    with pytest.raises(IngestError, match=r"not\.log\.gz: not a readable \.log log"):
        LogSource(tmp_path / "not.log.gz")
    (tmp_path / "x.pcap.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(IngestError, match=r"unknown log format '\.pcap'"):
        LogSource(tmp_path / "x.pcap.gz")


def test_impossible_frames_and_error_frames_are_counted(tmp_path: Path) -> None:
    log_file = tmp_path / "odd.log"
    log_file.write_text(
        "(nan) can0 0B4#00\n"  # no timestamp
        "(inf) can0 0B4#00\n"
        "(1.0) can0 FFF#00\n"  # three digits: a standard ID, at most 7FF
        f"(1.0) can0 0B4##0{'00' * 65}\n"  # 65 bytes: more than CAN FD carries
        "(2.0) can0 0B4#0102\n"
        "(3.0) can0 20000080#0000000000000000\n"  # SocketCAN's error frame
    )
    source = LogSource(log_file)
    assert [(f.timestamp, f.data) for f in source.frames()] == [(2.0, b"\x01\x02")]
    assert source.counts.corrupt == {"corrupt_line": 4, "error_frame": 1}
    asc = tmp_path / "odd.asc"
    head = "".join((DATA / "drive_short.asc").read_text().splitlines(keepends=True)[:5])
    asc.write_text(head + " 0.1 1 ErrorFrame\n 0.2 1 FFFFx Rx d 1 01\n 0.3 1 7FFF Rx d 1 01\n")
    source = LogSource(asc)
    assert [(f.arbitration_id, f.is_extended_id) for f in source.frames()] == [(0xFFFF, True)]
    assert source.counts.corrupt == {"error_frame": 1, "corrupt_line": 1}


def test_candump_ids_seen_before_are_read_as_carefully_as_the_first(tmp_path: Path) -> None:
    # the fast path remembers each ID's parse: a later line must not borrow it by looking alike
    log_file = tmp_path / "alike.log"
    log_file.write_text(
        "(1.0) can0 0B4#01\n"
        "(1.1) can0 0B40\n"  # no '#': not the ID 0B4 with the payload 0B40
        "(1.2) can0 0B4#ZZ\n"  # a remembered ID, bad hex: corrupt all the same
        "(1.3) can0 000000B4#02\n"  # the same number, extended
        "(1.4) can0 7FF#03\n"
        "(1.5) can0 0B4#04\n"
    )
    source = LogSource(log_file)
    seen = []
    for frame in source.frames(frozenset({0x0B4})):
        # the counts are current at every frame, not only at the end
        seen.append((frame.data, frame.is_extended_id, source.counts.frames))
    assert seen == [(b"\x01", False, 1), (b"\x02", True, 2), (b"\x04", False, 4)]
    assert source.counts.corrupt == {"corrupt_line": 2}
    assert (source.counts.frames, source.counts.unmapped) == (4, 1)


def test_an_over_long_line_is_one_corrupt_line(tmp_path: Path) -> None:
    for suffix in (".log", ".csv"):
        lines = (DATA / f"drive_short{suffix}").read_text().splitlines(keepends=True)
        lines.insert(10, "7" * (3 * MAX_LINE) + "\n")
        path = tmp_path / f"long{suffix}"
        path.write_text("".join(lines))
        source = LogSource(path)
        assert len(list(source.frames())) == 3000
        assert source.counts.corrupt == {"corrupt_line": 1}, suffix


def test_a_trc_without_its_columns_ends(tmp_path: Path) -> None:
    lines = (DATA / "drive_short.trc").read_text().splitlines(keepends=True)
    path = tmp_path / "nocolumns.trc"
    path.write_text("".join(line for line in lines if not line.startswith(";$COLUMNS")))
    source = LogSource(path)
    assert list(source.frames()) == []
    assert source.counts.corrupt == {"corrupt_line": 3000}  # each says why: no columns


def test_other_formats_refuse_junk_at_open(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"\x00junk" * 100)
    with pytest.raises(IngestError, match=r"junk\.db: not a readable \.db log"):
        LogSource(tmp_path / "junk.db")
    (tmp_path / "junk.mf4").write_bytes(b"\x00junk" * 100)
    if importlib.util.find_spec("asammdf") is None:  # the dev extras do not bring it
        expected = r"junk\.mf4: \.mf4 logs need the asammdf package: pip install"
    else:
        expected = r"junk\.mf4: not a readable \.mf4 log"
    with pytest.raises(IngestError, match=expected):
        LogSource(tmp_path / "junk.mf4")


def test_a_name_too_long_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot open log file: File name too long"):
        LogSource(tmp_path / ("x" * 300 + ".log"))
