"""Replay benchmark: our full replay path against python-can's bare LogReader, same log, same run.

Usage: python bench/replay.py [--frames N] [--format .log] [--keep PATH]

Builds a simulated drive of at least N frames (default 1,000,000) with the simulator, then
times (best of 3 each) (a) iterating python-can's ``LogReader`` over the file and doing nothing
else, (b) our decode path: parse, filter, decode every mapped frame to canonical samples and
keep the per-signal statistics, and (c) the same plus scoring (``msp-agent replay``). Prints
frames/s for each and the ratios to (a).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import can

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.replay import Replay  # noqa: E402
from edge_agent.simulate import simulate  # noqa: E402

DEMO_MAP = ROOT / "dbc" / "msp_demo.toml"


def bare_logreader(path: Path) -> int:
    """Baseline: python-can parses every line into a Message, nothing else."""
    n = 0
    for _ in can.LogReader(path):
        n += 1
    return n


def decode_path(path: Path) -> int:
    """Ours, the issue's "full path": parse, filter, decode mapped frames to canonical samples."""
    replay = Replay(path, DEMO_MAP)
    for _ in replay.samples():
        pass
    return replay.report.frames


def scored_replay(path: Path) -> int:
    """Ours with scoring too: ``msp-agent replay`` as it now runs (events, trips, score)."""
    return Replay(path, DEMO_MAP).run().frames


def best_of(fn: object, path: Path, runs: int) -> tuple[float, int]:
    """Best wall time of ``runs`` calls and the frame count the call returned."""
    assert callable(fn)
    best, frames = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        frames = fn(path)
        best = min(best, time.perf_counter() - start)
    return best, frames


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--format", default=".log", help="log suffix (default .log, candump)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="reuse/keep the log at this path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / f"bench{args.format}"
        if not path.exists():
            # ~2,300 frames per simulated second; ask for a little more than needed.
            seconds = args.frames / 2300 * 1.05
            result = simulate(path, scenario="mixed", seed=42, duration=seconds)
            print(f"simulated {result.frames:,} frames ({seconds:.0f} s of driving) -> {path}")
        t_base, n_base = best_of(bare_logreader, path, args.runs)
        t_ours, n_ours = best_of(decode_path, path, args.runs)
        t_scored, n_scored = best_of(scored_replay, path, args.runs)
        assert n_base == n_ours == n_scored, (n_base, n_ours, n_scored)
        size = path.stat().st_size / 1e6
        print(f"log: {n_base:,} frames, {size:.1f} MB, format {path.suffix}")
        print(f"python-can LogReader (parse only):        {n_base / t_base:>10,.0f} frames/s")
        print(f"msp decode path (parse+filter+decode):    {n_ours / t_ours:>10,.0f} frames/s")
        print(f"msp replay with scoring (msp-agent replay): {n_scored / t_scored:>8,.0f} frames/s")
        print(f"ratio decode path / baseline: {t_base / t_ours:.2f}")
        print(f"ratio scored replay / baseline: {t_base / t_scored:.2f}")


if __name__ == "__main__":
    main()
