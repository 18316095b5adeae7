"""``msp-registry audit``: re-verify every stored chain from its JWS records (an independent
check of what the registry kept: signatures, contiguous seqs, prev hashes, gap markers)."""

from __future__ import annotations

import argparse

from msp_protocol.chain import verify_chain
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PublicKey, load_public_key

from ..config import add_common
from . import emit, open_store


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit``."""
    p = subparsers.add_parser("audit", help="re-verify every stored chain; exit 1 on a break")
    p.add_argument("--device", help="only this device")
    add_common(p)
    p.set_defaults(func=_do_audit)


def _do_audit(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows, broken = [], 0
    try:
        for device in store.devices():
            if args.device and device.id != args.device:
                continue
            tokens = store.chain_records(device.id)
            if not tokens:
                continue
            key = load_public_key(device.public_key_pem.encode("ascii"))

            def keys(_kid: str, key: PublicKey = key) -> PublicKey:
                return key

            try:
                report = verify_chain(tokens, keys)
                verdict = f"ok: seqs {report.first_seq}..{report.last_seq}"
                rows.append({"device": device.id, "records": report.records,
                             "evicted": report.evicted, "verdict": verdict})  # fmt: skip
            except ProtocolError as exc:
                broken += 1
                rows.append({"device": device.id, "records": len(tokens), "evicted": None,
                             "verdict": f"BROKEN: {exc}"})  # fmt: skip
    finally:
        store.close()
    emit(rows, ["device", "records", "evicted", "verdict"], args.json)
    return 1 if broken else 0
