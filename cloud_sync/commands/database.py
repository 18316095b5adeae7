"""``msp-registry migrate | backup | restore``: the registry database's schema and copies
(docs/store.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_common, load_config
from ..store.backup import backup, restore
from ..store.open import migrate_store, parse_store_url


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``migrate``, ``backup`` and ``restore``."""
    p = subparsers.add_parser(
        "migrate", help="bring the registry database to this version's schema (or create it)"
    )
    add_common(p)
    p.set_defaults(func=_do_migrate)

    p = subparsers.add_parser(
        "backup", help="copy the registry database and its secret files into a new directory"
    )
    p.add_argument("out", type=Path, help="the backup directory to make (0700)")
    add_common(p)
    p.set_defaults(func=_do_backup)

    p = subparsers.add_parser(
        "restore", help="restore a backup into a new, empty database (same back end)"
    )
    p.add_argument("backup", type=Path, help="a directory `msp-registry backup` made")
    add_common(p)
    p.set_defaults(func=_do_restore)


def _do_migrate(args: argparse.Namespace) -> int:
    config = load_config(args)
    before, after = migrate_store(config.db, secrets_dir=config.secrets_dir)
    where = parse_store_url(config.db).display
    if before == 0:
        print(f"{where}: created at schema version {after}")
    elif before == after:
        print(f"{where}: already at schema version {after}")
    else:
        print(f"{where}: migrated from schema version {before} to {after}")
    return 0


def _do_backup(args: argparse.Namespace) -> int:
    config = load_config(args)
    info = backup(config.db, args.out, secrets=config.secrets_dir)
    print(f"backed up {info.backend} registry (schema {info.schema_version},"
          f" {info.counts.get('records', 0)} records) to {args.out}")  # fmt: skip
    return 0


def _do_restore(args: argparse.Namespace) -> int:
    config = load_config(args)
    info = restore(args.backup, config.db, secrets=config.secrets_dir)
    print(f"restored {args.backup} ({info.counts.get('records', 0)} records, made"
          f" {info.created_at}) into {parse_store_url(config.db).display};"
          " check it with msp-registry audit")  # fmt: skip
    return 0
