"""``msp-registry``: the command line of the cloud registry; one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
from collections.abc import Sequence

from .errors import RegistryError

#: Subcommand modules under cloud_sync.commands; each offers ``add_subparser(subparsers)``.
SUBCOMMANDS: tuple[str, ...] = (
    "serve", "enroll", "revoke", "mosquitto_config", "nats_config", "queries", "audit", "fleet",
    "database", "public", "recipients", "recipient", "responder", "guardian", "insurer", "key",
    "operator", "web",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="msp-registry", description="Mobility Smart Passport cloud registry."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"cloud_sync.commands.{name}").add_subparser(subparsers)
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("msp-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``msp-registry``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except RegistryError as exc:
        print(f"msp-registry: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
