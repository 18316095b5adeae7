"""``msp-registry`` subcommands: one module each, with ``add_subparser(subparsers)``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..config import load_config
from ..errors import RegistryError
from ..store.sqlite import SqliteStore


def open_store(args: argparse.Namespace) -> SqliteStore:
    """The registry database the command line names; RegistryError when there is none yet."""
    config = load_config(args)
    if not config.db.exists():
        raise RegistryError(f"{config.db}: no registry database")
    return SqliteStore(config.db)


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
