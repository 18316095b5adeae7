"""Soak run: an 8-hour simulated truck drive replayed at high speed through ``msp-agent run``,
sampling the agent's resident memory every few seconds. Memory must stay flat.

    .venv/bin/python bench/soak.py                 # 8 h of driving (about 15 min on 2 cores)
    .venv/bin/python bench/soak.py --hours 1       # quicker look

A 30-minute truck drive is simulated once and repeated with shifted timestamps (ignition off
and on between repeats, so trips, events and health records keep coming). The broker is
unreachable, so every record stays in the outbox, as on a gateway out of coverage. Prints the
RSS after warm-up (the baseline), the peak, their ratio, and the slope of a least-squares line
through the samples after warm-up, in MiB per simulated hour.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.keys import init_device_key
from edge_agent.simulate import simulate

REPO = Path(__file__).resolve().parent.parent
LEG_S = 1800.0


def build_log(directory: Path, hours: float) -> tuple[Path, int]:
    """A candump log of ``hours`` of truck driving: one simulated leg, repeated."""
    leg = directory / "leg.log"
    simulate(leg, scenario="truck", seed=11, duration=LEG_S, background=False)
    lines = leg.read_text().splitlines()
    first = float(lines[0].split()[0].strip("()"))
    last = float(lines[-1].split()[0].strip("()"))
    span = last - first + 60.0  # a minute parked between legs
    out = directory / "soak.log"
    frames = 0
    with out.open("w") as f:
        for i in range(max(1, round(hours * 3600 / span))):
            shift = i * span
            for line in lines:
                stamp, rest = line.split(" ", 1)
                f.write(f"({float(stamp[1:-1]) + shift:.6f}) {rest}\n")
                frames += 1
    leg.unlink()
    return out, frames


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours [8]")
    parser.add_argument("--speed", type=float, default=10_000.0, help="replay speed [10000]")
    parser.add_argument("--every", type=float, default=2.0, help="RSS sample period, s [2]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="msp-soak-") as tmp:
        d = Path(tmp)
        log, frames = build_log(d, args.hours)
        init_device_key(d / "device.key", "gw-soak")
        config = d / "agent.toml"
        config.write_text(f"""
device = "gw-soak"
key = "{d / "device.key"}"
vin = "JTDKB20U093456789"
vehicle_class = "heavy_truck"
fuel_type = "diesel"
[[bus]]
name = "can0"
interface = "virtual"
channel = "soak"
signal_map = "{REPO / "dbc" / "msp_demo.toml"}"
[replay]
log = "{log}"
speed = {args.speed}
exit_at_end = true
[card]
enabled = false
[outbox]
path = "{d / "outbox.db"}"
[uplink]
broker = "mqtt://127.0.0.1:9"
[agent]
health_interval_s = 10
stop_flush_s = 0.1
""")
        agent = Path(sys.executable).with_name("msp-agent")
        started = time.monotonic()
        proc = subprocess.Popen([str(agent), "run", "--config", str(config)])
        samples: list[tuple[float, float]] = []
        while proc.poll() is None:
            value = rss_kib(proc.pid)
            if value is not None:
                samples.append((time.monotonic() - started, value / 1024))
            time.sleep(args.every)
        wall = time.monotonic() - started
        if proc.returncode != 0 or len(samples) < 4:
            print(f"agent exited {proc.returncode} after {len(samples)} samples", file=sys.stderr)
            return 1
        warm = samples[len(samples) // 10 :]
        baseline = warm[0][1]
        peak = max(v for _, v in samples)
        sim_hours_per_s = args.hours / wall
        per_hour = slope(warm) / sim_hours_per_s if sim_hours_per_s else 0.0
        print(f"{args.hours:g} h simulated, {frames:,} frames in {wall:.0f} s "
              f"({frames / wall:,.0f} frames/s), {len(samples)} RSS samples")  # fmt: skip
        print(f"RSS after warm-up {baseline:.1f} MiB, peak {peak:.1f} MiB "
              f"(peak/baseline {peak / baseline:.3f})")  # fmt: skip
        print(f"slope after warm-up: {per_hour:+.3f} MiB per simulated hour "
              f"({slope(warm) * 60:+.3f} MiB per wall minute)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
