"""Log ingest: every python-can format, the candump fast path, filtering and corrupt input."""

from __future__ import annotations

import logging
from pathlib import Path

import can
import pytest

from edge_agent.errors import IngestError
from edge_agent.frames import Frame
from edge_agent.ingest import LogSource
from tests.conftest import DATA

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


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"")
    with pytest.raises(IngestError, match=r"unknown log format '\.pcap'"):
        LogSource(tmp_path / "x.pcap")
    with pytest.raises(IngestError, match="no such log file"):
        LogSource(tmp_path / "missing.log")
