"""``msp-agent map check``: test a signal map's signs, scales and units against a log's physics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..mapcheck import check
from ..replay import Replay
from .mapargs import add_map_arguments, log_tz, maps_of


def add_subparser(subparsers: Any) -> None:
    """Register ``map`` and its ``check``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "map", help="work with signal maps", description="Work with signal maps."
    )
    commands = parser.add_subparsers(dest="map_command", required=True, metavar="COMMAND")
    check_parser = commands.add_parser(
        "check",
        help="test each mapped signal of a log against physics",
        description="Replay LOG through MAP and test each mapped signal against what the "
        "log's other signals say it must be: longitudinal acceleration against d(speed)/dt, "
        "lateral against yaw rate x speed, yaw against the course over ground (or the "
        "steering angle), the odometer against integrated speed, pedal ranges. Says per "
        "signal: consistent, sign looks inverted, scale looks off by xN, or not enough "
        "motion to tell. Exit 0 when nothing looks wrong, 1 when something does.",
    )
    check_parser.add_argument("log", metavar="LOG", help="CAN log file of a drive")
    add_map_arguments(check_parser)
    check_parser.add_argument("--json", action="store_true", help="print one JSON object")
    check_parser.set_defaults(func=_do_check)


def _do_check(args: argparse.Namespace) -> int:
    maps = maps_of(args)
    replay = Replay(args.log, maps, tz=log_tz(args))
    findings = check(replay.samples())
    wrong = [f for f in findings if f.verdict in ("inverted", "scale", "inconsistent")]
    if args.json:
        names = str(maps) if isinstance(maps, str | Path) else {k: str(v) for k, v in maps.items()}
        print(json.dumps({"map": names, "log": args.log,
                          "findings": [f.to_json() for f in findings]}))  # fmt: skip
    else:
        width = max((len(f.signal) for f in findings), default=0)
        for f in findings:
            print(f"{f.signal:<{width}}  {f.message}  (against {f.reference}, {f.points:,} points)")
        if not findings:
            print("no mapped signal this check knows how to test")
    return 1 if wrong else 0
