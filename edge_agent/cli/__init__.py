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
    "simulate", "replay", "report", "map", "vehicles", "obd", "card", "keys", "outbox", "uplink",
    "run",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered, or with ``only`` that one.

    Registering a subcommand imports its module, and with it what the subcommand runs
    (python-can, cryptography, SQLite, paho...): :func:`main` registers just the one the
    command line names, so that ``msp-agent replay`` does not pay for ``msp-agent uplink``.
    """
    parser = argparse.ArgumentParser(
        prog="msp-agent", description="Mobility Smart Passport in-vehicle gateway agent."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS if only is None else (only,):
        importlib.import_module(f"{__name__}.{name}").add_subparser(subparsers)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, or None when it names none (``--help``, a typo, no
    command): the options before a subcommand (``-v``, ``--version``, ``-h``) take no value,
    so the subcommand is the first argument that is not an option."""
    for arg in argv:
        if arg == "--" or not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``msp-agent``; returns the process exit code (2 for a usage or input error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_of(argv)).parse_args(argv)
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
