"""``msp-registry recipients``: the recipients a consent may name, for gateways to install.

``--json --out FILE`` writes the list every gateway reads (a responder's entry also carries
the X25519 ``public_key`` gateways seal emergency profiles to) (``/etc/msp/recipients.json``,
``edge_agent.identity.recipients``) so that a consent naming an unknown recipient is refused
at the gateway, before the card signs it (docs/consent.md, *Recipients*)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import add_common
from ..consents import registered_recipients
from . import emit, open_store


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``recipients``."""
    p = subparsers.add_parser("recipients", help="the recipients a consent may name")
    p.add_argument("--out", type=Path, help="write the JSON list to FILE (for gateways)")
    add_common(p)
    p.set_defaults(func=_do_recipients)


def _do_recipients(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        keys = {r.id: r.public_key for r in store.recipients() if r.public_key}
        rows: list[dict[str, str]] = []
        for i, r in registered_recipients(store).items():
            rows.append({"id": i, "role": r} | ({"public_key": keys[i]} if i in keys else {}))
    finally:
        store.close()
    if args.out is not None:
        text = json.dumps({"recipients": rows}, indent=2, ensure_ascii=False) + "\n"
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {len(rows)} recipients to {args.out}")
        return 0
    if args.json:
        print(json.dumps({"recipients": rows}, indent=2, ensure_ascii=False))
        return 0
    emit(rows, ["id", "role"], False)
    return 0
