"""The record envelope, the kinds and their data tiers, and strict parsing of record payloads.

A record is ``{v, kind, device, vin, seq, prev, ts, session, body}`` (DESIGN.md, Records); its
bytes on the wire are RFC 8785 canonical JSON inside a JWS (see ``msp_protocol.jws``).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from . import bodies
from .canonical import CanonicalJsonError, canonical_json
from .codec import from_json, to_json
from .errors import RecordError
from .schema import validator

#: Largest payload (and largest JWS) accepted, in bytes.
MAX_RECORD_BYTES: Final = 64 * 1024
#: The envelope version this package writes and reads.
VERSION: Final = 1


class Tier(enum.Enum):
    """Who may see a kind of data (MSP proposal): the collecting service only, a recipient the
    person consented to, or anyone (aggregates naming no person or vehicle)."""

    PRIVATE = "private"
    CONSENT = "consent"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class KindInfo:
    """What the protocol knows about one record kind."""

    name: str
    body: type[bodies.Body]
    tier: Tier
    #: True for data whose consent is given in advance (an emergency goes to responders).
    pre_consented: bool = False


KINDS: Final[dict[str, KindInfo]] = {
    k.name: k
    for k in (
        KindInfo("session.start", bodies.SessionStart, Tier.CONSENT),
        KindInfo("session.end", bodies.SessionEnd, Tier.CONSENT),
        KindInfo("trip", bodies.Trip, Tier.CONSENT),
        KindInfo("event", bodies.Event, Tier.CONSENT),
        KindInfo("dtc", bodies.Dtc, Tier.CONSENT),
        KindInfo("emergency", bodies.Emergency, Tier.CONSENT, pre_consented=True),
        KindInfo("stats", bodies.Stats, Tier.PUBLIC),
        KindInfo("health", bodies.Health, Tier.PRIVATE),
        KindInfo("gap", bodies.Gap, Tier.PRIVATE),
    )
}
_KIND_OF_BODY: Final = {info.body: name for name, info in KINDS.items()}


def tier_of(kind: str) -> Tier:
    """Return the data tier of ``kind``; raises ``RecordError`` for an unknown kind."""
    return kind_info(kind).tier


def kind_info(kind: str) -> KindInfo:
    """Return what the protocol knows about ``kind``; raises ``RecordError`` if unknown."""
    try:
        return KINDS[kind]
    except KeyError:
        raise RecordError(f"unknown kind {kind!r}", "kind") from None


def kind_of(body: bodies.Body) -> str:
    """Return the kind name of a body dataclass instance."""
    return _KIND_OF_BODY[type(body)]


def format_ts(seconds: float) -> str:
    """Return the wire form of a UTC instant in epoch seconds, to the millisecond."""
    moment = datetime.fromtimestamp(round(seconds, 3), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    """Return the aware UTC datetime of a wire timestamp (validate the record first)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Record:
    """One record: the JWS payload. ``prev`` is ``None`` exactly when ``seq`` is 1."""

    kind: str
    device: str
    vin: str
    seq: int
    prev: str | None
    ts: str
    session: str | None
    body: bodies.Body
    v: int = VERSION

    def to_json(self) -> dict[str, Any]:
        """Return the record as a plain JSON object."""
        return {
            "v": self.v,
            "kind": self.kind,
            "device": self.device,
            "vin": self.vin,
            "seq": self.seq,
            "prev": self.prev,
            "ts": self.ts,
            "session": self.session,
            "body": to_json(self.body),
        }

    def canonical(self) -> bytes:
        """Return the RFC 8785 bytes that get signed; raises ``RecordError`` if invalid."""
        value = self.to_json()
        check_record_json(value)
        try:
            data = canonical_json(value)
        except CanonicalJsonError as exc:
            raise RecordError(str(exc), "body") from None
        if len(data) > MAX_RECORD_BYTES:
            raise RecordError(f"{len(data)} bytes, more than {MAX_RECORD_BYTES}", "(record)")
        return data


def _reject_constant(name: str) -> Any:
    raise RecordError(f"{name} is not JSON", "(record)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RecordError("duplicate key", key)
        result[key] = value
    return result


def loads_strict(data: bytes | str) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity and payloads over 64 KiB."""
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > MAX_RECORD_BYTES:
        raise RecordError(f"{size} bytes, more than {MAX_RECORD_BYTES}", "(record)")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"not JSON: {exc}", "(record)") from None
    except RecursionError:
        raise RecordError("nested too deeply", "(record)") from None


def check_record_json(value: Any) -> None:
    """Validate a record's JSON value against the envelope and its kind's body schema."""
    validator("envelope").validate(value)
    kind = value["kind"]
    validator(kind).validate(value["body"], "body")
    if (value["seq"] == 1) != (value["prev"] is None):
        raise RecordError("must be null exactly when seq is 1", "prev")


def record_from_json(value: Any) -> Record:
    """Return the ``Record`` of a JSON value; raises ``RecordError`` naming the bad field."""
    check_record_json(value)
    body = from_json(KINDS[value["kind"]].body, value["body"])
    return Record(
        kind=value["kind"],
        device=value["device"],
        vin=value["vin"],
        seq=int(value["seq"]),
        prev=value["prev"],
        ts=value["ts"],
        session=value["session"],
        body=body,
    )


def parse_record(data: bytes | str) -> Record:
    """Parse a record payload strictly (see ``loads_strict`` and the shipped schemas)."""
    return record_from_json(loads_strict(data))


def body_from_json(kind: str, value: Any) -> bodies.Body:
    """Validate and build the body of ``kind`` from JSON (for code that receives bodies alone)."""
    info = kind_info(kind)
    validator(kind).validate(value, "body")
    return from_json(info.body, value)
