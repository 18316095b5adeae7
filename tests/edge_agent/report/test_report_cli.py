"""``msp-agent report`` on real logs of tests/data and on bad input, through the real command
line: a log without positions, a log without a trip, corrupt logs, the extra missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, DEMO_DBC, DEMO_MAP, REPO
from tests.edge_agent.report.conftest import agent
from tests.edge_agent.report.pagekit import read_page

POSITIONS = ('[signals."Vehicle.CurrentLocation.Latitude"]',
             '[signals."Vehicle.CurrentLocation.Longitude"]')


def map_without_positions(tmp_path: Path) -> Path:
    """The demo map less its two GNSS signals (the same DBC)."""
    kept, skipping = [], False
    for line in DEMO_MAP.read_text().splitlines():
        if line.startswith("["):
            skipping = line in POSITIONS
        if not skipping:
            kept.append(line)
    text = "\n".join(kept).replace('dbc = "msp_demo.dbc"', f'dbc = "{DEMO_DBC}"')
    assert "CurrentLocation" not in text
    path = tmp_path / "no_gnss.toml"
    path.write_text(text + "\n")
    return path


def refused(run: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    [line] = [x for x in run.stderr.splitlines() if x.startswith("msp-agent")]
    for text in expected:
        assert text in line
    return line


def test_a_log_without_positions_gives_a_report_without_a_route(
    drive_log: Path, tmp_path: Path
) -> None:
    html, png = tmp_path / "trip.html", tmp_path / "trip.png"
    done = agent("report", str(drive_log), "--map", str(map_without_positions(tmp_path)),
                 "-o", str(html), "--png", str(png))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no positions, no route" in done.stdout
    text = html.read_text(encoding="utf-8")
    page = read_page(text)
    assert "no-route" in page.ids
    assert "No route: this log has no positions" in text
    assert '"name":"route"' not in text
    assert len(page.events) >= 3  # the rest of the report is all there
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["drive_short.log", "drive_short.blf", "drive_short.asc"])
def test_a_real_log_without_a_trip(name: str, tmp_path: Path) -> None:
    """tests/data's stationary drive: no trip, no event, positions (the car stands still)."""
    log = DATA / name
    html = tmp_path / "short.html"
    replay = agent("replay", str(log), "--map", str(DEMO_MAP), "--json", "--log-tz", "UTC")
    expected = json.loads(replay.stdout)
    done = agent("report", str(log), "--map", str(DEMO_MAP), "-o", str(html), "--log-tz", "UTC")
    assert done.returncode == 0, done.stderr
    text = html.read_text(encoding="utf-8")
    page = read_page(text)
    assert expected["events"] == [] and page.events == []
    assert expected["trips"] == [] and page.scores == []
    assert "No trip in this log" in text and "No event detected" in text
    assert f"{expected['frames']:,} frames, {expected['decoded_frames']:,} decoded" in text
    assert "no trip, 0 events, route drawn" in done.stdout


def test_the_default_output_is_beside_the_log(tmp_path: Path) -> None:
    log = tmp_path / "drive.log"
    log.write_bytes((DATA / "drive_short.log").read_bytes())
    done = agent("report", str(log), "--map", f"can0={DEMO_MAP}")  # a map for one channel
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "drive.html").stat().st_size > 1_000_000  # plotly.js inline
    assert not (tmp_path / "drive.png").exists()


def test_a_log_with_corrupt_lines_is_reported_with_them(tmp_path: Path) -> None:
    html, log = tmp_path / "m.html", DATA / "malformed.log"
    rejected = json.loads(agent("replay", str(log), "--map", str(DEMO_MAP), "--json").stdout
                          )["rejected"]  # fmt: skip
    assert rejected["corrupt_line"] == 3
    done = agent("report", str(log), "--map", str(DEMO_MAP), "-o", str(html))
    assert done.returncode == 0, done.stderr
    text = html.read_text(encoding="utf-8")
    listed = ", ".join(f"{reason} {n}" for reason, n in rejected.items() if n)
    assert f"Rejected while decoding: {listed}." in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (bytes(range(256)) * 4, "not a readable .blf log"),
        (b"LOGG" + bytes(range(256)) * 4, "no sample decoded with the map from 0 frames"),
        ((DATA / "drive_short.blf").read_bytes()[:300], "nothing to report"),  # cut short
    ],
)
def test_a_corrupt_binary_log_is_one_clear_line(
    content: bytes, expected: str, tmp_path: Path
) -> None:
    log = tmp_path / "junk.blf"
    log.write_bytes(content)
    refused(agent("report", str(log), "--map", str(DEMO_MAP), "-o", str(tmp_path / "j.html")),
            "msp-agent: error: ", str(log), expected)  # fmt: skip
    assert not (tmp_path / "j.html").exists()


def test_a_log_with_nothing_decodable_is_one_clear_line(tmp_path: Path) -> None:
    log = tmp_path / "noise.log"
    log.write_text("not a frame\n" * 3 + "(1.0) can0 7FF#00\n")
    line = refused(agent("report", str(log), "--map", str(DEMO_MAP), "-o",
                         str(tmp_path / "n.html")), str(log), "nothing to report")  # fmt: skip
    assert "corrupt_line 3" in line and "from 1 frames" in line
    assert not (tmp_path / "n.html").exists()


def test_an_unwritable_output_is_one_clear_line(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "trip.html"
    refused(agent("report", str(DATA / "drive_short.log"), "--map", str(DEMO_MAP), "-o",
                  str(target)), str(target), "cannot write the report")  # fmt: skip


_WITHOUT_EXTRA = """
import sys
sys.modules["plotly"] = None  # as if not installed: find_spec says so, import fails
sys.modules["matplotlib"] = None
from edge_agent.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("option", "what"), [("-o", "HTML"), ("--png", "PNG")])
def test_without_the_extra_a_clear_message(option: str, what: str, tmp_path: Path) -> None:
    out = tmp_path / "trip.out"
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRA, "report",
                           str(DATA / "drive_short.log"), "--map", str(DEMO_MAP), option,
                           str(out)], capture_output=True, text=True, timeout=120, cwd=REPO,
                          check=False)  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    package = "plotly" if what == "HTML" else "matplotlib"
    assert done.stderr.strip() == (f"msp-agent report: the {what} report needs {package}, not "
                                   "installed: pip install 'msp-gateway[report]'")  # fmt: skip
    assert not out.exists()
