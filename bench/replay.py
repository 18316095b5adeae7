"""Replay benchmark: our full replay path against python-can's bare LogReader, same log, same run.

Usage: python bench/replay.py [--frames N] [--format .log] [--mix demo|real|both] [--keep PATH]

Builds a simulated drive of at least N frames (default 1,000,000) with the simulator, on two
ID mixes: ``demo``, the simulator's own bus (about 20 % of frames on mapped IDs, 46 unmapped
IDs), and ``real``, a real car's mix (about 30 % of frames on mapped IDs, mapped messages at
10-100 Hz, 64 unmapped IDs at 100 Hz and 1 Hz: the edge-efficiency issue's definition). Then
times (best of 3 each) (a) iterating python-can's ``LogReader`` over the file and doing nothing
else, (b) our decode path: parse, filter, decode every mapped frame to canonical samples and
keep the per-signal statistics, and (c) the same plus scoring (``msp-agent replay``). Prints
frames/s for each and the ratios to (a).
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import can

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.replay import Replay  # noqa: E402
from edge_agent.simulate import simulate  # noqa: E402

DEMO_MAP = ROOT / "dbc" / "msp_demo.toml"


#: The real mix's unmapped traffic: (IDs, period in 10 ms ticks).
REAL_BACKGROUND = ((10, 1), (54, 100))


def real_mix(path: Path, frames: int) -> int:
    """Write a candump log of the real ID mix with at least ``frames`` frames; return the count.

    The mapped frames are the simulator's (without its background); 64 IDs it does not map are
    interleaved at their rates, in time order.
    """
    seconds = frames / 1500 * 1.05  # ~450 mapped + ~1054 unmapped frames per second
    mapped = path.with_suffix(".mapped.log")
    simulate(mapped, scenario="mixed", seed=42, duration=seconds, background=False)
    rng = random.Random(7)
    ids = [rng.randrange(0x200, 0x7FF) for _ in range(sum(n for n, _ in REAL_BACKGROUND))]
    periods = [period for n, period in REAL_BACKGROUND for _ in range(n)]

    def background(start: float, end: float) -> Iterator[tuple[float, str]]:
        tick = 0
        while (t := start + tick * 0.01) < end:
            for can_id, period in zip(ids, periods, strict=True):
                if tick % period == 0:
                    data = rng.getrandbits(64).to_bytes(8, "big").hex().upper()
                    yield t + 0.0001, f"({t + 0.0001:.6f}) can0 {can_id:03X}#{data}\n"
            tick += 1

    def stamped(lines: Iterable[str]) -> Iterator[tuple[float, str]]:
        for line in lines:
            yield float(line[1 : line.index(")")]), line

    with mapped.open() as f:
        first = float(f.readline()[1:].split(")")[0])
    count = 0
    with mapped.open() as src, path.open("w") as out:
        for _, line in heapq.merge(stamped(src), background(first, first + seconds)):
            out.write(line)
            count += 1
    mapped.unlink()
    return count


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
    parser.add_argument("--mix", choices=("demo", "real", "both"), default="both")
    parser.add_argument("--keep", type=Path, help="reuse/keep the logs in this directory")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for mix in ("demo", "real") if args.mix == "both" else (args.mix,):
            path = where / f"bench-{mix}{args.format if mix == 'demo' else '.log'}"
            if not path.exists():
                if mix == "demo":
                    # ~2,300 frames per simulated second; ask for a little more than needed.
                    seconds = args.frames / 2300 * 1.05
                    result = simulate(path, scenario="mixed", seed=42, duration=seconds)
                    print(f"simulated {result.frames:,} frames ({seconds:.0f} s) -> {path}")
                else:
                    print(f"wrote {real_mix(path, args.frames):,} frames, real ID mix -> {path}")
            measure(mix, path, args.runs)


def measure(mix: str, path: Path, runs: int) -> None:
    """Time the three paths on ``path`` and print frames/s and the ratios to the baseline."""
    t_base, n_base = best_of(bare_logreader, path, runs)
    t_ours, n_ours = best_of(decode_path, path, runs)
    t_scored, n_scored = best_of(scored_replay, path, runs)
    assert n_base == n_ours == n_scored, (n_base, n_ours, n_scored)
    size = path.stat().st_size / 1e6
    replay = Replay(path, DEMO_MAP)
    for _ in replay.samples():
        pass
    share = 1 - replay.report.unmapped / replay.report.frames
    print(f"[{mix} mix] log: {n_base:,} frames, {size:.1f} MB, format {path.suffix}, "
          f"{share:.0%} on mapped IDs")
    print(f"python-can LogReader (parse only):        {n_base / t_base:>10,.0f} frames/s")
    print(f"msp decode path (parse+filter+decode):    {n_ours / t_ours:>10,.0f} frames/s")
    print(f"msp replay with scoring (msp-agent replay): {n_scored / t_scored:>8,.0f} frames/s")
    print(f"[{mix} mix] ratio decode path / baseline: {t_base / t_ours:.2f}")
    print(f"[{mix} mix] ratio scored replay / baseline: {t_base / t_scored:.2f}")


if __name__ == "__main__":
    main()
