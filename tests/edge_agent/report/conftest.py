"""A simulated drive with harsh events (a real candump log through the real command line), its
``msp-agent replay --json`` report, and its trip report made once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.simulate import simulate
from tests.conftest import DEMO_MAP, REPO

#: City drive of about 4 minutes, 1.4 km: harsh braking twice, acceleration and cornering.
DRIVE = {"scenario": "city", "seed": 5, "duration": 240, "background": False}


def agent(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``msp-agent ARGS`` in a fresh interpreter (stdin, stdout and stderr not terminals)."""
    return subprocess.run([sys.executable, "-m", "edge_agent.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, check=False)  # fmt: skip


@dataclass(frozen=True)
class Made:
    log: Path
    replay: dict[str, object]  # msp-agent replay --json
    html: Path
    png: Path
    stdout: str


@pytest.fixture(scope="session")
def drive_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("drive") / "city.log", **DRIVE).path  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def made(drive_log: Path) -> Made:
    replay = agent("replay", str(drive_log), "--map", str(DEMO_MAP), "--json")
    assert replay.returncode == 0, replay.stderr
    html, png = drive_log.with_suffix(".html"), drive_log.with_suffix(".png")
    done = agent("report", str(drive_log), "--map", str(DEMO_MAP), "-o", str(html),
                 "--png", str(png))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Made(drive_log, json.loads(replay.stdout), html, png, done.stdout)
