"""``msp-agent simulate``: write a simulated drive of the demo vehicle as a CAN log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..simulate import DEFAULT_DBC, SCENARIOS, simulate, write_truth
from ..text import plural


def add_subparser(subparsers: Any) -> None:
    """Register ``simulate``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="simulate a drive of the demo vehicle and write it as a CAN log",
        description="Simulate a physically plausible drive of the demo vehicle (dbc/msp_demo.dbc) "
        "and write it in the log format the suffix of OUT names (.log candump, .asc, .blf, "
        ".trc, .csv, ...). Deterministic for a seed.",
    )
    parser.add_argument("out", metavar="OUT", help="log file to write")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument(
        "--duration",
        type=float,
        default=600.0,
        metavar="S",
        help="approximate length in seconds (default: 600). A drive is made of whole city "
        "and highway legs of one to three minutes each, so it ends up to about 80 s "
        "before or 140 s after S; the output and --truth give the length written",
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="mixed", help="default: mixed")
    parser.add_argument("--crash", action="store_true", help="end the drive with a crash")
    parser.add_argument(
        "--no-background", action="store_true", help="leave out traffic on unmapped IDs"
    )
    parser.add_argument("--truth", metavar="TRUTH.json", help="write the ground truth here")
    parser.add_argument(
        "--dbc",
        type=Path,
        default=DEFAULT_DBC,
        help="the demo vehicle's DBC (default: dbc/msp_demo.dbc of the source tree; "
        "give it when the agent is installed from a wheel)",
    )
    parser.set_defaults(func=_do_simulate)


def _do_simulate(args: argparse.Namespace) -> int:
    result = simulate(
        args.out,
        scenario=args.scenario,
        seed=args.seed,
        duration=args.duration,
        crash=args.crash,
        background=not args.no_background,
        dbc_path=args.dbc,
    )
    if args.truth:
        write_truth(result, args.truth)
    events = result.truth["events"]
    assert isinstance(events, list)
    seconds = float(str(result.truth["duration_s"]))
    print(
        f"wrote {plural(result.frames, 'frame')} to {result.path}: a {seconds:.0f} s drive "
        f"(asked: about {args.duration:g} s; drives end with a whole leg), "
        f"{float(str(result.truth['distance_km'])):.2f} km, "
        f"{plural(len(events), 'injected event')}",
        file=sys.stderr,
    )
    return 0
