"""``msp-agent replay``: replay a CAN log through the live decode path and report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..obd.passive import PassiveObdDecoder
from ..replay import Replay, ReplayReport


def add_subparser(subparsers: Any) -> None:
    """Register ``replay``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a CAN log through the agent's decode path",
        description="Replay a CAN log (any format python-can reads) through exactly the code a "
        "live bus goes through, with the frames' own timestamps as the clock, and report.",
    )
    parser.add_argument("log", metavar="LOG", help="CAN log file")
    parser.add_argument("--map", required=True, metavar="MAP", help="signal map (TOML)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="pace at X times real time (default: as fast as possible)",
    )
    parser.add_argument(
        "--obd", action="store_true",
        help="also decode OBD-II answers (0x7E8-0x7EF, 0x18DAF1xx) recorded in the log",
    )
    parser.set_defaults(func=_do_replay)


def _do_replay(args: argparse.Namespace) -> int:
    if args.speed is not None and args.speed <= 0:
        print("msp-agent replay: --speed must be positive", file=sys.stderr)
        return 2
    extra = [PassiveObdDecoder()] if args.obd else []
    replay = Replay(args.log, args.map, speed=args.speed, extra_decoders=extra)
    size = replay.source.path.stat().st_size
    progress = None
    if sys.stdout.isatty() and size > 20_000_000:

        def progress(frames: int) -> None:
            print(f"\r{frames:>12,} frames", end="", file=sys.stderr, flush=True)

    report = replay.run(progress)
    if progress is not None:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(_summary(report))
    return 0


def _summary(report: ReplayReport) -> str:
    data = report.to_json()
    lines = [
        f"{data['source']}: {data['frames']:,} frames, {data['decoded_frames']:,} decoded, "
        f"{data['ignored']['unmapped_id']:,} on unmapped IDs",
    ]
    bad = {k: v for k, v in data["rejected"].items() if v}
    lines.append("rejected: " + (", ".join(f"{k} {v:,}" for k, v in bad.items()) or "none"))
    width = max((len(n) for n in data["signals"]), default=0)
    for name, s in data["signals"].items():
        lines.append(f"  {name:<{width}}  {s['count']:>9,}  {s['min']:>12.3f} .. {s['max']:.3f}")
    return "\n".join(lines)
