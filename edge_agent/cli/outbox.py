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

from msp_protocol.chain import Anchor, verify_chain
from msp_protocol.errors import ChainError, ProtocolError
from msp_protocol.jws import PublicKey, load_public_key

from ..errors import OutboxError
from ..keys import load_signer
from ..outbox import OutboxLimits, connect, stats_of
from ..outbox.salvage import Damage, Scan, reading, scan_file
from ..text import plural


def add_subparser(subparsers: Any) -> None:
    """Register ``outbox`` and its ``verify``, ``stats`` and ``export`` subcommands."""
    parser = subparsers.add_parser("outbox", help="inspect a durable outbox (read-only)")
    actions = parser.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="check every record's signature and the hash chain",
        description="Check the signature of every record and the chain (contiguous seqs, "
        "prev hashes, gap markers). Exit 0 if all holds, 1 naming the first break. A "
        "damaged file is read as far as it can be: every unreadable row or page is named, "
        "the readable records are checked, and the exit is 1.",
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
        "export", help="print one JWS per line in seq order, for independent checks",
        description="Print every readable record, one JWS per line in seq order. Damage "
        "(unreadable rows or pages, a JWS that is not its stored hash) is named on stderr "
        "and the exit is 1; the readable records are still printed.",
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


def _scan(db: Path) -> tuple[sqlite3.Connection, Scan]:
    """Read what can be read; a file with nothing of an outbox in it is an error."""
    conn = _open(db)
    found = scan_file(db, conn, None, None)
    if found.identity is None and not found.records:
        problems = "; ".join(str(d) for d in found.damage) or "no outbox state"
        raise OutboxError(f"{db} is not a readable outbox: {problems}")
    return conn, found


def _report(db: Path, damage: tuple[Damage, ...]) -> None:
    for item in damage:
        print(f"{db}: damaged: {item}", file=sys.stderr)


def _integrity(conn: sqlite3.Connection) -> list[str]:
    """SQLite's own verdict on the file's structure (up to 20 lines)."""
    try:
        lines = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(20)")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return ["ok: the structure is sound, the damage is inside rows"] if lines == ["ok"] else lines


def _do_verify(args: argparse.Namespace) -> int:
    conn, found = _scan(args.db)
    key: PublicKey
    try:
        if args.pub:
            key = load_public_key(args.pub.read_bytes())
        elif args.key:
            if found.identity is None:
                raise OutboxError("the device id stored in the outbox is unreadable; pass --pub")
            key = load_signer(args.key, found.identity[0]).public_key()
        else:
            if found.identity is None:
                raise OutboxError("the public key stored in the outbox is unreadable; pass --pub")
            key = load_public_key(found.identity[1].encode("ascii"))
            print(
                f"{args.db}: checking against the public key stored in the outbox itself; "
                "pass --pub for an independent check",
                file=sys.stderr,
            )
    except (OSError, ProtocolError) as exc:
        raise OutboxError(f"cannot load the public key: {exc}") from None
    damage = found.damage
    if damage:
        _report(args.db, damage)
        for line in _integrity(conn):
            print(f"{args.db}: SQLite integrity_check: {line}", file=sys.stderr)
    tokens = [item.record.jws for item in found.records]
    if not tokens:
        print(f"{args.db}: {'no readable records' if damage else 'empty (every record acked)'}")
        return 1 if damage else 0
    anchor = None
    if found.state is not None and found.state.acked_seq and found.state.acked_hash:
        anchor = Anchor(found.state.acked_seq, found.state.acked_hash)
    try:
        report = verify_chain(tokens, lambda _kid: key, anchor=anchor)
    except ChainError as exc:
        print(f"{args.db}: chain broken at {exc}", file=sys.stderr)
        return 1
    verdict = f"DAMAGED, {len(damage)} problem(s) above; readable" if damage else "OK:"
    print(
        f"{args.db}: {verdict} {plural(report.records, 'record')} of {report.device}, seqs "
        f"{report.first_seq}..{report.last_seq}, {plural(report.evicted, 'seq')} declared "
        "evicted or lost"
    )
    return 1 if damage else 0


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
    count = 0
    with reading(args.db, _open(args.db), None, None) as reader:
        for item in reader:  # streamed: a full outbox is never held in memory
            sys.stdout.write(item.record.jws + "\n")
            count += 1
        damage = reader.merged_damage()
        if reader.identity is None and not count:
            problems = "; ".join(str(d) for d in damage) or "no outbox state"
            raise OutboxError(f"{args.db} is not a readable outbox: {problems}")
    _report(args.db, damage)
    if damage:
        print(f"{args.db}: exported {count} readable record(s); {len(damage)} problem(s) "
              "above", file=sys.stderr)  # fmt: skip
    return 1 if damage else 0
