"""``msp-agent``: the command line of the edge agent; one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import AgentError

#: Subcommand modules under edge_agent.cli; each offers ``add_subparser(subparsers)``, which
#: registers its parser with ``set_defaults(func=...)``; ``func(args)`` returns the exit code.
SUBCOMMANDS: tuple[str, ...] = (
    "simulate", "replay", "map", "vehicles", "obd", "card", "keys", "outbox", "uplink", "run",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="msp-agent", description="Mobility Smart Passport in-vehicle gateway agent."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_subparser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``msp-agent``; returns the process exit code (2 for a usage or input error)."""
    args = build_parser().parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except AgentError as exc:
        print(f"msp-agent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): silence the interpreter's flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
