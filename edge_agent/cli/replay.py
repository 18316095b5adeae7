"""``msp-agent replay``: replay a CAN log through the live decode path and report."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..frames import FrameDecoder
from ..obd.passive import PassiveObdDecoder
from ..replay import MapSpec, Progress, Replay, ReplayReport
from ..scoring import ScoringConfig
from ..scoring.config import CLASS_DEFAULTS, CO2_KG_PER_L
from ..signalmap import load_signal_map
from ..text import plural
from .mapargs import add_map_arguments, log_tz, maps_of


def add_subparser(subparsers: Any) -> None:
    """Register ``replay``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a CAN log through the agent's decode path",
        description="Replay a CAN log (any format python-can reads) through exactly the code a "
        "live bus goes through, with the frames' own timestamps as the clock, and report.",
    )
    parser.add_argument("log", metavar="LOG", help="CAN log file")
    add_map_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="pace at X times real time (default: as fast as possible)",
    )
    add_scoring_arguments(parser)
    records = parser.add_argument_group(
        "records", "append the drive's event and trip records to an outbox (all four together)"
    )
    records.add_argument("--outbox", metavar="DB", help="outbox database (created if missing)")
    records.add_argument("--key", metavar="PATH", help="device key (msp-agent keys init)")
    records.add_argument("--device", metavar="ID", help="device id (the key's kid)")
    records.add_argument("--vin", metavar="VIN", help="the vehicle's VIN")
    parser.set_defaults(func=_do_replay)


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--obd``, ``--vehicle-class`` and ``--fuel-type`` (replay and report)."""
    parser.add_argument(
        "--obd",
        action="store_true",
        help="also decode OBD-II answers (0x7E8-0x7EF, 0x18DAF1xx) recorded in the log",
    )
    parser.add_argument(
        "--vehicle-class",
        choices=tuple(CLASS_DEFAULTS),
        help="scoring thresholds (default: the map's vehicle_class, else car)",
    )
    parser.add_argument("--fuel-type", choices=tuple(CO2_KG_PER_L), default="gasoline")


def scoring_of(args: argparse.Namespace, maps: MapSpec) -> ScoringConfig | None:
    """The scoring the options ask for, or None for the map's class defaults."""
    if not args.vehicle_class and args.fuel_type == "gasoline":
        return None
    first = maps if isinstance(maps, str | Path) else next(iter(maps.values()))
    cls = args.vehicle_class or load_signal_map(first).vehicle_class or "car"
    return ScoringConfig.for_class(cls, fuel_type=args.fuel_type)


def extra_decoders(args: argparse.Namespace) -> list[FrameDecoder]:
    """The decoders the options add to the map's (``--obd``)."""
    return [PassiveObdDecoder()] if args.obd else []


def _do_replay(args: argparse.Namespace) -> int:
    if args.speed is not None and not 0 < args.speed < math.inf:  # nan, inf, 0, -1
        print("msp-agent replay: --speed must be a positive number", file=sys.stderr)
        return 2
    wanted = [args.outbox, args.key, args.device, args.vin]
    if any(wanted) and not all(wanted):
        print("msp-agent replay: --outbox, --key, --device and --vin go together", file=sys.stderr)
        return 2
    maps = maps_of(args)
    tz = log_tz(args)
    extra = extra_decoders(args)
    scoring = scoring_of(args, maps)
    with contextlib.ExitStack() as stack:
        writer = None
        if args.outbox:  # the outbox brings SQLite and cryptography: loaded only for it
            from ..keys import load_signer  # noqa: PLC0415
            from ..outbox import Outbox  # noqa: PLC0415
            from ..writer import RecordWriter  # noqa: PLC0415

            outbox = Outbox.open(
                Path(args.outbox), load_signer(Path(args.key), args.device), args.vin
            )
            stack.callback(outbox.close)
            writer = RecordWriter(outbox)
        replay = Replay(args.log, maps, tz=tz, speed=args.speed, extra_decoders=extra,
                        scoring=scoring, writer=writer)  # fmt: skip
        with progress_bar(replay, show=not args.json and sys.stderr.isatty()) as progress:
            report = replay.run(progress)
        if writer is not None:
            report.extra["records"] = {
                key.removeprefix("records."): n for key, n in sorted(writer.counts.items())
            }
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(_summary(report))
    return 0


@contextlib.contextmanager
def progress_bar(replay: Replay, *, show: bool) -> Iterator[Callable[[Progress], None] | None]:
    """With ``show``, a progress bar on stderr for ``replay`` (bytes of the log read,
    percentage, rate and time left) and the callback that moves it; else None. tqdm is
    loaded only then: ``--json`` and a stderr that is not a terminal never load it."""
    if not show:
        yield None
        return
    from tqdm import tqdm  # noqa: PLC0415 - only on a terminal

    # a serial console or a fresh pseudo-terminal reports 0 x 0, where tqdm would draw nothing
    columns, lines = shutil.get_terminal_size()
    with contextlib.suppress(OSError):
        size = os.get_terminal_size(sys.stderr.fileno())
        columns, lines = size.columns or columns, size.lines or lines
    with tqdm(
        total=replay.source.path.stat().st_size, desc=replay.source.path.name, unit="B",
        unit_scale=True, unit_divisor=1024, file=sys.stderr, ncols=columns, nrows=lines,
    ) as bar:  # fmt: skip

        def progress(at: Progress) -> None:
            if at.bytes_read is not None and at.bytes_read > bar.n:
                bar.update(at.bytes_read - bar.n)

        yield progress


def _summary(report: ReplayReport) -> str:
    data = report.to_json()
    lines = [
        f"{data['source']}: {plural(data['frames'], 'frame')}, {data['decoded_frames']:,} "
        f"decoded, {data['ignored']['unmapped_id']:,} on unmapped IDs",
    ]
    bad = {k: v for k, v in data["rejected"].items() if v}
    lines.append("rejected: " + (", ".join(f"{k} {v:,}" for k, v in bad.items()) or "none"))
    outside = data["outside_dbc_range"]
    if outside:
        lines.append(
            "outside their DBC range, kept: " + ", ".join(f"{k} {v:,}" for k, v in outside.items())
        )
    width = max((len(n) for n in data["signals"]), default=0)
    for name, s in data["signals"].items():
        lines.append(f"  {name:<{width}}  {s['count']:>9,}  {s['min']:>12.3f} .. {s['max']:.3f}")
    for trip in data.get("trips", []):
        score = "no score (< 1 km)" if trip["score"] is None else f"score {trip['score']:.1f}"
        events = ", ".join(f"{n} {k}" for k, n in trip["events"].items() if n) or "no events"
        lines.append(
            f"trip {trip['start']} .. {trip['end']}: {trip['distance_km']:.2f} km, "
            f"{trip['duration_s'] / 60:.1f} min, {events}, {score}"
        )
    for event in data.get("events", []):
        lines.append(
            f"  {event['start']}  {event['type']:<20} {event['severity']:<8} "
            f"peak {event['peak']:g} at {event['speed_kmh']:.0f} km/h"
        )
    if "records" in data:
        lines.append(
            "records appended: " + ", ".join(f"{k} {n}" for k, n in data["records"].items())
        )
    return "\n".join(lines)
