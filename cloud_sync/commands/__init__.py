"""``msp-registry`` subcommands: one module each, with ``add_subparser(subparsers)``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..config import RegistryConfig, load_config
from ..store import Store
from ..store.open import open_store as open_url


def open_store(args: argparse.Namespace) -> Store:
    """The registry database the command line names; StoreError when there is none yet."""
    return store_of(load_config(args), must_exist=True)


def store_of(config: RegistryConfig, *, must_exist: bool = False, migrate: bool = False) -> Store:
    """The store of a configuration (``cloud_sync.store.open.open_store``)."""
    return open_url(config.db, secrets_dir=config.secrets_dir, must_exist=must_exist,
                    migrate=migrate)  # fmt: skip


def emit_one(row: dict[str, Any], columns: Sequence[str], as_json: bool) -> None:
    """Print one answer: as one JSON object, or as a one-row text table of ``columns``."""
    if as_json:
        json.dump(row, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
        return
    emit([row], columns, False)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Print ``rows`` as JSON (one array) or as an aligned text table of ``columns``."""
    if as_json:
        json.dump(list(rows), sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
        return
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
