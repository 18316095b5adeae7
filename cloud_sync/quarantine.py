"""Records the registry keeps aside: correctly signed and chained, but with a body it refuses.

A gateway's record whose signature verifies with the device's key and whose ``seq``/``prev``
continue the device's chain is the device's own word, even when its body is no record the
registry can use (it fails the schema, ``bad_record``; it declares impossible evictions,
``bad_gap``; it is dated in the future, ``future_ts``). Refusing it outright would stall the
gateway for good: it can never be acked, so the gateway re-sends it for ever and nothing after
it can join the chain. Instead it is *quarantined*: kept with its JWS and the reason in the
``quarantine`` table, it takes its place in the chain (the head and the cumulative ack move
past it), it is never republished and nothing is derived from it; ``msp-registry audit``
lists it.

Future-dated records (``future_ts``): a record's data times (its ``ts`` and the instants in its
body, ``msp_protocol.records.occurred_at``) may lie at most ``MAX_CLOCK_SKEW`` (5 min) after the
record's arrival at the registry (``msp_protocol.records.check_not_future``). A gateway's clock
can run a little ahead; a record from further in the future would keep the weight 1 in the
decayed score (``msp_protocol.scoring.decay_weight``) until that future arrives. Old records
are never refused for their age: a gateway may have been offline for weeks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from msp_protocol.records import Record

_HASH = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_SEQ = 2**53 - 1
_MAX_DIGITS = 4000


@dataclass(frozen=True, slots=True)
class Refused:
    """The chain place of a signed record whose body the registry refuses: ``reason`` is its
    counter (``bad_record``, ``bad_gap``, ``future_ts``), ``detail`` says what was wrong.
    ``body`` is always ``None``: nothing is taken from a refused body."""

    device: str
    vin: str | None
    seq: int
    prev: str | None
    kind: str | None
    reason: str
    detail: str
    body: None = None


def chain_place(payload: bytes, reason: str, detail: str) -> Refused | None:
    """The chain place (device, VIN, seq, prev) of a signed payload that is no valid record,
    read as leniently as the envelope allows; ``None`` if even that is unreadable (then the
    record cannot take a place in the chain and is refused outright)."""
    try:
        value = json.loads(payload, parse_int=_lenient_int)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested too deeply
        return None
    if not isinstance(value, dict):
        return None
    device, vin, seq, prev, kind = (value.get(k) for k in ("device", "vin", "seq", "prev", "kind"))
    if not isinstance(device, str) or type(seq) is not int or not 1 <= seq <= _MAX_SEQ:
        return None
    if prev is not None and not (isinstance(prev, str) and _HASH.fullmatch(prev)):
        return None
    if (seq == 1) != (prev is None):
        return None
    return Refused(
        device=device,
        vin=vin if isinstance(vin, str) else None,
        seq=seq,
        prev=prev,
        kind=kind[:40] if isinstance(kind, str) else None,
        reason=reason,
        detail=detail[:500],
    )


def _lenient_int(text: str) -> int | None:
    # Python refuses to convert more than 4300 digits (ValueError); such a number anywhere in
    # the body must not hide the envelope's seq and prev (as a seq it is invalid anyway).
    return int(text) if len(text) <= _MAX_DIGITS else None


def refused(record: Record, reason: str, detail: str) -> Refused:
    """The chain place of a record that parsed but that the registry refuses."""
    return Refused(record.device, record.vin, record.seq, record.prev, record.kind, reason,
                   detail[:500])  # fmt: skip
