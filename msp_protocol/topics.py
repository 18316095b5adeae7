"""MQTT topics of the protocol and the registry's ack payload.

| topic                          | publisher             | payload                          |
|--------------------------------|-----------------------|----------------------------------|
| msp/v1/dev/{device}/rec        | gateway, QoS 1        | record JWS(s), one per line     |
| msp/v1/dev/{device}/ack        | registry              | ``{"seq": N}``: all <= N stored  |
| msp/v1/fleet/{fleet}/{kind}    | registry              | consent-filtered record          |
| msp/v1/fleet/{fleet}/score/{p} | registry, retained    | person ``p``'s portable score    |
| msp/v1/fleet/{fleet}/keys/{d}  | registry, retained    | device ``d``'s record-signing key|
| msp/v1/public/stats/{cell}     | registry, retained    | a cell's latest released hour    |

``msp/v1/public/#`` is readable by anyone (the broker's ``public`` user: docs/public.md).
"""

from __future__ import annotations

import json
import re
from typing import Final

from .errors import ProtocolError
from .records import KINDS

PREFIX: Final = "msp/v1"
#: What the registry subscribes to: every device's records.
REC_FILTER: Final = f"{PREFIX}/dev/+/rec"
#: The same, as a shared subscription for registry workers scaled out behind one broker.
REC_SHARED_FILTER: Final = f"$share/registry/{REC_FILTER}"
PUBLIC_STATS: Final = f"{PREFIX}/public/stats"
# -- public statistics (issue 14) -------------------------------------------------------------
#: What anyone may read: every public statistic.
PUBLIC_FILTER: Final = f"{PREFIX}/public/#"
#: An H3 cell index at resolution 7, as the ``stats`` schema has it.
_CELL: Final = re.compile(r"^87[0-9a-f]{7}f{6}$")


def public_stats_topic(cell: str) -> str:
    """Retained topic of one H3 cell's (resolution 7) latest released public statistics."""
    if not isinstance(cell, str) or not _CELL.match(cell):
        raise ProtocolError(f"{str(cell)[:40]!r} is not an H3 cell of resolution 7", "cell")
    return f"{PUBLIC_STATS}/{cell}"


# -- end of public statistics -------------------------------------------------------------------

_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REC: Final = re.compile(rf"^{PREFIX}/dev/([^/]+)/rec$")


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it is a valid device or fleet id (one topic level, no wildcards)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ProtocolError(
            f"{value!r} is not an id (letters, digits, '.', '_', '-'; at most 64)", what
        )
    return value


def rec_topic(device: str) -> str:
    """Topic a gateway publishes its records on."""
    return f"{PREFIX}/dev/{check_id(device, 'device')}/rec"


def ack_topic(device: str) -> str:
    """Topic the registry acks a gateway's records on."""
    return f"{PREFIX}/dev/{check_id(device, 'device')}/ack"


def fleet_topic(fleet: str, kind: str) -> str:
    """Topic the registry republishes one fleet's consented records of ``kind`` on."""
    if kind not in KINDS:
        raise ProtocolError(f"unknown kind {kind!r}", "kind")
    return f"{PREFIX}/fleet/{check_id(fleet, 'fleet')}/{kind}"


def fleet_score_topic(fleet: str, pseudonym: str) -> str:
    """Retained topic of one person's portable score, as ``fleet`` knows the person: one
    topic per person, so a late subscriber gets every consented score, not only the last."""
    return f"{PREFIX}/fleet/{check_id(fleet, 'fleet')}/score/{check_id(pseudonym, 'person')}"


def fleet_key_topic(fleet: str, device: str) -> str:
    """Retained topic of a device's record-signing key, for ``fleet`` to verify its records."""
    return f"{PREFIX}/fleet/{check_id(fleet, 'fleet')}/keys/{check_id(device, 'device')}"


def fleet_filter(fleet: str) -> str:
    """Subscription filter of everything republished to one fleet."""
    return f"{PREFIX}/fleet/{check_id(fleet, 'fleet')}/#"


def device_of_rec_topic(topic: str) -> str:
    """Return the device id of a ``.../dev/{device}/rec`` topic; raises ``ProtocolError``."""
    match = _REC.match(topic)
    if not match:
        raise ProtocolError(f"{topic!r} is not a record topic", "topic")
    return check_id(match.group(1), "topic")


def encode_ack(seq: int) -> bytes:
    """Return the ack payload saying every record up to ``seq`` is committed."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProtocolError(f"{seq!r} is not a seq", "seq")
    return json.dumps({"seq": seq}, separators=(",", ":")).encode("ascii")


def parse_ack(payload: bytes) -> int:
    """Return the seq of an ack payload ``{"seq": N}``; raises ``ProtocolError`` otherwise."""
    if len(payload) > 256:
        raise ProtocolError(f"{len(payload)} bytes, an ack is tiny", "ack")
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError("not JSON", "ack") from None
    if not isinstance(value, dict) or set(value) != {"seq"}:
        raise ProtocolError('expected exactly {"seq": N}', "ack")
    seq = value["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        raise ProtocolError(f"{seq!r} is not a seq", "ack.seq")
    return seq
