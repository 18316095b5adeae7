"""``msp-agent vehicles``: the vehicle catalogue, and ``vehicles fetch`` for opendbc's DBCs."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from ..signals import CANONICAL
from ..vehicles import OPENDBC_VERSION, VEHICLES, VehicleError, opendbc


def add_subparser(subparsers: Any) -> None:
    """Register ``vehicles`` and its ``fetch``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "vehicles",
        help="list the vehicle catalogue (signal maps on opendbc's DBCs)",
        description="List the catalogue's vehicles and the canonical signals each provides "
        "(? marks a signal whose sign opendbc's carstate.py does not establish: check it with "
        "msp-agent map check). Use one with `msp-agent replay LOG --vehicle NAME` or "
        '`vehicle = "NAME"` on a [[bus]]. The maps read the DBC files of opendbc '
        f"{OPENDBC_VERSION}: installed (pip install msp-gateway[vehicles]) or fetched.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_do_list)
    commands = parser.add_subparsers(dest="vehicles_command", metavar="COMMAND")
    fetch = commands.add_parser(
        "fetch",
        help=f"download the opendbc {OPENDBC_VERSION} wheel the maps read",
        description=f"Download opendbc {OPENDBC_VERSION}'s wheel (pip download --no-deps) into "
        "the cache directory, where the catalogue's maps find its DBC files. Its Python is "
        "never imported, so this works on any Python version.",
    )
    fetch.add_argument(
        "--dir", type=Path, metavar="DIR", help="cache directory (default: $MSP_VEHICLES_CACHE, "
        "else ~/.cache/msp-gateway/opendbc)",
    )  # fmt: skip
    fetch.set_defaults(func=_do_fetch)


def _source() -> str | None:
    try:
        return opendbc.find_source().where
    except VehicleError:
        return None


def _do_list(args: argparse.Namespace) -> int:
    source = _source()
    if args.json:
        entries = [
            {"name": v.name, "make": v.make, "models": v.models, "dbc": f"{opendbc.PREFIX}{v.dbc}",
             "map": str(v.map_path), "signals": list(v.signals()),
             "sign_unverified": list(v.sign_unverified)}
            for v in VEHICLES
        ]  # fmt: skip
        print(json.dumps({"opendbc": OPENDBC_VERSION, "dbc_source": source,
                          "vehicles": entries}))  # fmt: skip
        return 0
    short = {name: name.removeprefix("Vehicle.") for name in CANONICAL}
    width = max(len(v.name) for v in VEHICLES)
    for v in VEHICLES:
        names = [short[s] + ("?" if s in v.sign_unverified else "") for s in v.signals()]
        print(f"{v.name:<{width}}  {v.make}: {v.models}")
        indent = " " * (width + 2)
        print(textwrap.fill(", ".join(names), 100, initial_indent=indent, subsequent_indent=indent))
    print("?: sign not established by opendbc's carstate.py; check it with msp-agent map check")
    print(f"DBC files: opendbc {OPENDBC_VERSION}, "
          + (source or "not available: run `msp-agent vehicles fetch`"))  # fmt: skip
    return 0


def _do_fetch(args: argparse.Namespace) -> int:
    wheel = opendbc.fetch(args.dir)
    print(f"opendbc {OPENDBC_VERSION}: {wheel}")
    if args.dir is not None and args.dir != opendbc.cache_dir():
        print(f"set MSP_VEHICLES_CACHE={args.dir} for the maps to find it")
    return 0
