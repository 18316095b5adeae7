"""``msp-agent replay``'s progress bar: on a terminal (a real pseudo-terminal as stderr) a bar
with percentage, rate and time left; none with ``--json`` or when stderr is not a terminal.
And the progress a replay reports: bytes of the log read, rising to the file's size."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from edge_agent.replay import Progress, Replay
from edge_agent.simulate import simulate
from tests.conftest import DATA, DEMO_MAP, REPO

LOG = DATA / "drive_short.log"
#: One refresh of the bar: name, percentage, bar, done/total, [elapsed<left, rate].
BAR = re.compile(r"drive_short\.(log|blf|asc): +(\d+)%\|[^|]*\| *([\d.]+[kM]?)/([\d.]+[kM]?) "
                 r"\[(\d\d:\d\d)<(\d\d:\d\d|\?), +([\d.]+[kMG]?B/s|\?B/s)\]")  # fmt: skip


def replay_on_a_terminal(*args: str, size: tuple[int, int] | None = None
                         ) -> tuple[subprocess.CompletedProcess[str], str]:  # fmt: skip
    """``msp-agent replay ARGS`` with stderr a pseudo-terminal (of ``size`` rows, columns, or
    as a fresh one says: 0 x 0), stdout a pipe; returns the run and what the terminal got."""
    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    with subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "replay", *args],
                          stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                          text=True, cwd=REPO) as child:  # fmt: skip
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = child.communicate(timeout=120)
    os.close(master)
    done = subprocess.CompletedProcess(child.args, child.returncode, out, "")
    return done, seen.decode("utf-8", errors="replace")


@pytest.mark.parametrize("name", ["drive_short.log", "drive_short.blf", "drive_short.asc"])
def test_on_a_terminal_a_bar_with_percentage_rate_and_time_left(name: str) -> None:
    log = DATA / name
    done, terminal = replay_on_a_terminal(str(log), "--map", str(DEMO_MAP), size=(30, 100))
    assert done.returncode == 0
    assert done.stdout.startswith(f"{name}: 3,000 frames")  # the report is on stdout as ever
    bars = [m.groups() for m in BAR.finditer(terminal)]
    assert len(bars) >= 2, terminal  # the first refresh and the last
    percents = [int(b[1]) for b in bars]
    assert percents == sorted(percents) and percents[0] < 100 and percents[-1] == 100
    total_kib = log.stat().st_size / 1024
    last = bars[-1]
    assert last[2] == last[3] and last[3].endswith("k")  # bytes of the file, all read
    assert float(last[3][:-1]) == pytest.approx(total_kib, rel=0.01)
    assert re.fullmatch(r"[\d.]+[kMG]?B/s", last[6])  # the rate
    assert last[5] == "00:00"  # time left at the end
    for line in terminal.split("\r"):
        assert len(line.rstrip("\n")) <= 100  # fits the terminal


def test_a_terminal_that_reports_no_size_still_gets_the_bar() -> None:
    done, terminal = replay_on_a_terminal(str(LOG), "--map", str(DEMO_MAP))
    assert done.returncode == 0
    assert [m.group(2) for m in BAR.finditer(terminal)][-1] == "100"


def test_with_json_no_bar_even_on_a_terminal() -> None:
    done, terminal = replay_on_a_terminal(str(LOG), "--map", str(DEMO_MAP), "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["frames"] == 3000
    assert "%|" not in terminal and "B/s" not in terminal
    assert terminal.strip() == ""


def test_off_a_terminal_no_bar() -> None:
    done = subprocess.run([sys.executable, "-m", "edge_agent.cli", "replay", str(LOG), "--map",
                           str(DEMO_MAP)], capture_output=True, text=True, timeout=120, cwd=REPO,
                          check=False)  # fmt: skip
    assert done.returncode == 0
    assert done.stdout.startswith("drive_short.log: 3,000 frames")
    assert done.stderr == ""


@pytest.mark.parametrize("suffix", [".log", ".blf", ".log.gz"])  # .asc reads as .log does
def test_a_replay_reports_the_bytes_it_has_read(suffix: str, tmp_path: Path) -> None:
    """A longer real log (simulated, written in each format): the progress rises through the
    file and ends at its size (compressed bytes for .gz)."""
    log = simulate(tmp_path / f"drive{suffix}", scenario="city", seed=3, duration=60).path
    seen: list[Progress] = []
    report = Replay(log, DEMO_MAP).run(seen.append)
    size = log.stat().st_size
    assert all(p.size == size for p in seen)
    read = [p.bytes_read for p in seen]
    assert None not in read
    assert read == sorted(read)  # type: ignore[type-var]
    middle = {r for r in read if r is not None and 0 < r < size}
    assert len(middle) >= 3  # the bar moves through the file, not just at the ends
    assert read[-1] == size
    assert seen[-1].frames == report.frames
