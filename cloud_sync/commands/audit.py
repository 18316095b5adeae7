"""``msp-registry audit``: re-verify every stored chain from its JWS records (an independent
check of what the registry kept: signatures, contiguous seqs, prev hashes, gap markers), and
list the quarantined records (signed and chained, their bodies refused)."""

from __future__ import annotations

import argparse
from typing import Any

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import load_public_key

from ..chain_audit import audit_chain
from ..config import add_common
from . import emit, open_store


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit``."""
    p = subparsers.add_parser(
        "audit", help="re-verify every stored chain, list quarantined records; exit 1 on a break"
    )
    p.add_argument("--device", help="only this device")
    add_common(p)
    p.set_defaults(func=_do_audit)


def _do_audit(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    broken = 0
    try:
        for device in store.devices():
            if args.device and device.id != args.device:
                continue
            tokens = store.chain_records(device.id)
            quarantined = store.quarantined(device.id)
            erased = store.erased_records(device.id)
            if not tokens and not quarantined and not erased:
                continue
            held += [{"device": q.device, "seq": q.seq, "reason": q.reason, "detail": q.detail,
                      "received_at": q.received_at} for q in quarantined]  # fmt: skip
            try:
                key = load_public_key(device.public_key_pem.encode("ascii"))
                report = audit_chain(device.id, tokens, quarantined, key, erased)
                verdict = f"ok: seqs {report.first_seq}..{report.last_seq}"
                rows.append({"device": device.id, "records": report.records,
                             "evicted": report.evicted, "quarantined": report.quarantined,
                             "verdict": verdict})  # fmt: skip
            except ProtocolError as exc:
                broken += 1
                rows.append({"device": device.id, "records": len(tokens), "evicted": None,
                             "quarantined": len(quarantined),
                             "verdict": f"BROKEN: {exc}"})  # fmt: skip
    finally:
        store.close()
    if args.json:
        for row in rows:
            row["quarantine"] = [h for h in held if h["device"] == row["device"]]
        emit(rows, [], True)
    else:
        emit(rows, ["device", "records", "evicted", "quarantined", "verdict"], False)
        if held:
            print("\nquarantined (signed and chained, body refused; never republished):")
            emit(held, ["device", "seq", "reason", "received_at", "detail"], False)
    return 1 if broken else 0
