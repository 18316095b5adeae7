"""``msp-registry revoke``: refuse every further record of a gateway (stolen, scrapped)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ..config import add_common, load_config
from ..fleets import key_publication
from ..sqlite_store import SqliteStore
from ..store import Batch


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``revoke``."""
    p = subparsers.add_parser("revoke", help="revoke a gateway: its records are refused")
    p.add_argument("device", help="device id")
    add_common(p)
    p.set_defaults(func=_do_revoke)


def _do_revoke(args: argparse.Namespace) -> int:
    store = SqliteStore(load_config(args).db)
    try:
        store.revoke(args.device, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        device = store.device(args.device)
        if device is not None:  # the fleet learns that this key signs nothing new
            store.commit(Batch(publications=[key_publication(device.fleet, device)]))
    finally:
        store.close()
    print(f"revoked {args.device}")
    return 0
