"""``msp-agent report``: a trip report (HTML, or a PNG) of a CAN log, replayed as ``replay`` does.

Drawing needs the optional extra ``msp-gateway[report]`` (plotly, matplotlib); it is loaded
only here, after the log has been replayed, so ``msp-agent replay`` and the agent never
load it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..replay import Replay
from ..report import TripReport, collect
from ..text import plural
from .mapargs import add_map_arguments, log_tz, maps_of
from .replay import add_scoring_arguments, extra_decoders, progress_bar, scoring_of

#: What each output needs installed.
_NEEDS = {"HTML": ("plotly", "numpy"), "PNG": ("matplotlib", "numpy")}


def add_subparser(subparsers: Any) -> None:
    """Register ``report``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="a trip report of a CAN log: HTML page (plotly) or PNG image (matplotlib)",
        description="Replay a CAN log through the agent's decode and scoring path (exactly "
        "as msp-agent replay does) and draw the trip: speed, accelerations with the harsh "
        "thresholds, pedals and steering over time, every event marked and listed with its "
        "severity, the route when the log has positions, and the score with its penalty "
        "breakdown. The HTML file is self-contained (plotly's JavaScript inline, nothing "
        "fetched). Needs the optional extra: pip install 'msp-gateway[report]'.",
    )
    parser.add_argument("log", metavar="LOG", help="CAN log file")
    add_map_arguments(parser)
    parser.add_argument(
        "-o", "--output", metavar="HTML",
        help="HTML report to write (default: LOG with the suffix .html, unless only --png "
        "is given)",
    )  # fmt: skip
    parser.add_argument("--png", metavar="PNG", help="also (or only) write the report as a PNG")
    add_scoring_arguments(parser)
    parser.set_defaults(func=_do_report)


def _missing(what: str) -> list[str]:
    return [name for name in _NEEDS[what] if importlib.util.find_spec(name) is None]


def _do_report(args: argparse.Namespace) -> int:
    html = Path(args.output) if args.output else None
    png = Path(args.png) if args.png else None
    if html is None and png is None:
        html = Path(args.log).with_suffix(".html")
    for what, path in (("HTML", html), ("PNG", png)):
        missing = _missing(what) if path is not None else []
        if missing:
            print(f"msp-agent report: the {what} report needs {' and '.join(missing)}, not "
                  "installed: pip install 'msp-gateway[report]'", file=sys.stderr)  # fmt: skip
            return 2
    maps = maps_of(args)
    replay = Replay(args.log, maps, tz=log_tz(args), extra_decoders=extra_decoders(args),
                    scoring=scoring_of(args, maps))  # fmt: skip
    with progress_bar(replay, show=sys.stderr.isatty()) as progress:
        report = collect(replay, progress)
    if html is not None:
        from ..report.html import write_html  # noqa: PLC0415 - the extra, only here

        size = write_html(report, html)
        print(f"wrote {html} ({size / 1e6:.1f} MB, self-contained): {_about(report)}")
    if png is not None:
        from ..report.png import write_png  # noqa: PLC0415 - the extra, only here

        size = write_png(report, png)
        print(f"wrote {png} ({size / 1e3:.0f} kB): {_about(report)}")
    return 0


def _about(report: TripReport) -> str:
    scores = ", ".join("-" if t.score is None else f"{t.score:.1f}" for t in report.trips)
    trips = f"{plural(len(report.trips), 'trip')} (score {scores})" if scores else "no trip"
    route = "route drawn" if report.route else "no positions, no route"
    return f"{trips}, {plural(len(report.events), 'event')}, {route}"
