"""``msp-agent outbox verify|stats|export DB``: inspect an outbox without changing it."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from msp_protocol.chain import verify_chain
from msp_protocol.errors import ChainError, ProtocolError
from msp_protocol.jws import PublicKey, load_public_key

from ..errors import OutboxError
from ..keys import load_signer
from ..outbox import OutboxLimits, connect, iter_records, read_anchor, stats_of
from ..outbox.database import read_identity
from ..text import plural


def add_subparser(subparsers: Any) -> None:
    """Register ``outbox`` and its ``verify``, ``stats`` and ``export`` subcommands."""
    parser = subparsers.add_parser("outbox", help="inspect a durable outbox (read-only)")
    actions = parser.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="check every record's signature and the hash chain",
        description="Check the signature of every record and the chain (contiguous seqs, "
        "prev hashes, gap markers). Exit 0 if all holds, 1 naming the first break.",
    )
    verify.add_argument("db", type=Path, help="outbox database")
    trust = verify.add_mutually_exclusive_group()
    trust.add_argument("--pub", type=Path, help="device public key (PEM) to verify against")
    trust.add_argument("--key", type=Path, help="device private key file (its public half)")
    verify.set_defaults(func=_guarded(_do_verify))
    stats = actions.add_parser("stats", help="print what the outbox holds")
    stats.add_argument("db", type=Path, help="outbox database")
    stats.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    stats.set_defaults(func=_guarded(_do_stats))
    export = actions.add_parser(
        "export", help="print one JWS per line in seq order, for independent checks"
    )
    export.add_argument("db", type=Path, help="outbox database")
    export.set_defaults(func=_guarded(_do_export))


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report a file that is not a readable outbox as an error naming it, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except sqlite3.Error as exc:
            raise OutboxError(f"{args.db} is not a readable outbox: {exc}") from None
        except OutboxError as exc:
            if str(args.db) in str(exc):
                raise
            raise OutboxError(f"{args.db} is not a readable outbox: {exc}") from None

    return run


def _open(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise OutboxError(f"no outbox at {db}")
    return connect(db, readonly=True)


def _do_verify(args: argparse.Namespace) -> int:
    conn = _open(args.db)
    device, stored_pem = read_identity(conn)
    key: PublicKey
    try:
        if args.pub:
            key = load_public_key(args.pub.read_bytes())
        elif args.key:
            key = load_signer(args.key, device).public_key()
        else:
            key = load_public_key(stored_pem.encode("ascii"))
            print(
                f"{args.db}: checking against the public key stored in the outbox itself; "
                "pass --pub for an independent check",
                file=sys.stderr,
            )
    except (OSError, ProtocolError) as exc:
        raise OutboxError(f"cannot load the public key: {exc}") from None
    tokens = [r.jws for r in iter_records(conn)]
    if not tokens:
        print(f"{args.db}: empty (every record acked)")
        return 0
    try:
        report = verify_chain(tokens, lambda _kid: key, anchor=read_anchor(conn))
    except ChainError as exc:
        print(f"{args.db}: chain broken at {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.db}: OK: {plural(report.records, 'record')} of {report.device}, seqs "
        f"{report.first_seq}..{report.last_seq}, {plural(report.evicted, 'seq')} declared "
        "evicted"
    )
    return 0


def _do_stats(args: argparse.Namespace) -> int:
    stats = stats_of(_open(args.db), OutboxLimits())
    values = asdict(stats)
    for name in ("in_flight", "refused_total", "max_rows", "max_bytes"):
        del values[name]  # the running agent's, not the file's
    if args.json:
        print(json.dumps(values, sort_keys=True))
    else:
        for name, value in values.items():
            print(f"{name}: {value}")
    return 0


def _do_export(args: argparse.Namespace) -> int:
    for record in iter_records(_open(args.db)):
        sys.stdout.write(record.jws + "\n")
    return 0
