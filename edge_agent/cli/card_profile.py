"""``msp-agent card emergency-profile set FILE --responder NAME``: deposit the emergency profile
for a responder, sealed to it, signed with the card (and its PIN), queued as a ``profile``
record (``edge_agent.card.emergency_profile``).

Exit codes: 0 done, 1 the card was refused (reason printed), 2 bad input (``AgentError``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .card_person import _append, _common, _refused, _signer, _transport


def add_subparsers(sub: Any) -> None:
    """Register ``emergency-profile set`` under ``msp-agent card``."""
    profile = sub.add_parser("emergency-profile",
                             help="deposit your emergency profile for a responder (sealed)")
    psub = profile.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    put = psub.add_parser("set", help="seal FILE to a responder and sign it with the card")
    put.add_argument("file", type=Path,
                     help="JSON: blood_type, allergies, conditions, medication, "
                          "emergency_contact")
    put.add_argument("--responder", required=True,
                     help="a registered responder (its key comes from --recipients)")
    _common(put)
    put.set_defaults(func=_do_set)


def _do_set(args: argparse.Namespace) -> int:
    from msp_protocol.consent import statement_bytes  # noqa: PLC0415

    from ..card.emergency_profile import load_profile, profile_body, seal  # noqa: PLC0415
    from ..identity.card_acts import nonce  # noqa: PLC0415
    from ..identity.errors import BindingRefusedError  # noqa: PLC0415

    profile = load_profile(args.file)
    key = _responder_key(args.recipients, args.responder)
    item = seal(profile, args.responder, key, device=args.device, vin=args.vin,
                now=datetime.now(UTC), nonce=nonce())  # fmt: skip
    try:
        signed = _signer(args).sign(_transport(args, args.reader),
                                    statement_bytes(item.statement))  # fmt: skip
    except BindingRefusedError as exc:
        return _refused(args, exc)
    seq = _append(args, profile_body(item, signed.signature_b64, signed.certificate_sha256))
    if args.json:
        print(json.dumps({"responder": args.responder, "seq": seq,
                          "signed_at": item.statement.signed_at}))  # fmt: skip
    else:
        print(f"emergency profile sealed to {args.responder} and signed (profile record seq "
              f"{seq}, sent ahead of the backlog); the registry holds only the ciphertext")
    return 0


def _responder_key(path: Path, responder: str) -> str:
    """The responder's X25519 public key from the registry's recipients list."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the recipients list: {exc}") from None
    items = value.get("recipients") if isinstance(value, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("id") == responder:
            if item.get("role") != "responder" or not isinstance(item.get("public_key"), str):
                raise ConfigError(f"{path}: {responder!r} is no responder with a public_key "
                                  f"(role {item.get('role')!r})")  # fmt: skip
            return str(item["public_key"])
    raise ConfigError(f"{path}: no recipient {responder!r} (write the list with msp-registry "
                      "recipients --out FILE)")  # fmt: skip
