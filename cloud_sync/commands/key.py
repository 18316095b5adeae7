"""``msp-registry key [--out FILE]``: the registry's public signing key (PEM), for recipients
to check that a message came from this registry (it is also retained on msp/v1/registry/key)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_common
from ..recipients.signing import RegistrySigner
from . import open_store


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``key``."""
    p = subparsers.add_parser("key", help="the registry's public signing key")
    p.add_argument("--out", type=Path, help="write the PEM to FILE instead of printing it")
    add_common(p)
    p.set_defaults(func=_do_key)


def _do_key(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        pem = RegistrySigner(store).public_pem()
    finally:
        store.close()
    if args.out is not None:
        args.out.write_text(pem, encoding="ascii")
        print(f"wrote the registry's public key to {args.out}")
    else:
        print(pem, end="")
    return 0
