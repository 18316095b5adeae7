"""``msp-registry responder watch NAME --key FILE``: the reference receiver of an emergency
responder: verifies the registry's JWS and the gateway's, opens the sealed profile, prints it."""

from __future__ import annotations

import argparse
from pathlib import Path

from msp_protocol import roles

from ..recipients.directory import load_sealing_key
from ..recipients.watch import Checker
from .recipient import add_watch_options, run_watch


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``responder watch``."""
    parser = subparsers.add_parser("responder", help="emergency responders: the receiver")
    sub = parser.add_subparsers(dest="responder_command", required=True, metavar="ACTION")
    p = sub.add_parser("watch", help="receive crash notices, check them, open the profiles")
    add_watch_options(p)
    p.add_argument("--key", type=Path, help="the responder's sealing key (NAME.x25519)")
    p.set_defaults(func=_do_watch)


def _do_watch(args: argparse.Namespace) -> int:
    key = None if args.key is None else load_sealing_key(args.key)
    return run_watch(args, roles.RESPONDER, Checker(args.name, sealing_key=key))
