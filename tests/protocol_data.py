"""Real record bodies (one per kind, from tests/data/bodies) and signed chains for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from msp_protocol.bodies import Body
from msp_protocol.jws import Signer, record_hash
from msp_protocol.records import Record, body_from_json

DATA = Path(__file__).parent / "data"
DEVICE = "gw-0001"
VIN = "JTDKB20U793123456"


def body_json(kind: str) -> dict[str, Any]:
    """The fixture body of ``kind`` as JSON (a fresh copy)."""
    value: dict[str, Any] = json.loads((DATA / "bodies" / f"{kind}.json").read_text("utf-8"))
    return value


def body(kind: str) -> Body:
    """The fixture body of ``kind`` as its dataclass."""
    return body_from_json(kind, body_json(kind))


def make_chain(signer: Signer, kinds: list[str]) -> list[str]:
    """Sign a valid chain of records of the given kinds, seq 1..n."""
    tokens: list[str] = []
    prev = None
    for i, kind in enumerate(kinds, start=1):
        record = Record(
            kind=kind, device=signer.kid, vin=VIN, seq=i, prev=prev,
            ts=f"2026-11-26T08:00:{i % 60:02d}.000Z", session=None, body=body(kind),
        )  # fmt: skip
        tokens.append(signer.sign_record(record))
        prev = record_hash(tokens[-1])
    return tokens
