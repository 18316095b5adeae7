"""The record envelope, the kinds and their data tiers, and strict parsing of record payloads.

A record is ``{v, kind, device, vin, seq, prev, ts, session, body}`` (DESIGN.md, Records); its
bytes on the wire are the canonical JSON of its format version ``v`` inside a JWS (see
``msp_protocol.jws``): RFC 8785 for ``v: 2``, the legacy form for ``v: 1``. Parsing is total:
whatever bytes arrive, the result is a ``Record`` or a ``RecordError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, TypeVar

from . import bodies
from .canonical import CanonicalJsonError, canonical_json, canonical_json_v1
from .codec import from_json, to_json
from .errors import RecordError
from .schema import validator
from .strictjson import loads_strict as _loads

#: Largest payload (and largest JWS) accepted, in bytes.
MAX_RECORD_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordFormat:
    """One envelope version ``v``: how a record's JSON value becomes the bytes that are signed.

    A payload of version ``v`` is accepted only if it is byte for byte ``canonical`` of what it
    parses to. ``canonical`` takes the record's JSON value or the ``Record`` itself (a
    dataclass: its fields are the envelope's keys). (A framing other than JSON, e.g. a binary
    v3, adds its decoder here.)
    """

    version: int
    canonical: Callable[[Any], bytes]
    summary: str


#: Every record format this package reads, by ``v``; the envelope schema's ``v`` enum lists
#: the same numbers.
FORMATS: Final[dict[int, RecordFormat]] = {
    f.version: f
    for f in (
        RecordFormat(1, canonical_json_v1, "JSON in the legacy canonical form (rollout only)"),
        RecordFormat(2, canonical_json, "RFC 8785 canonical JSON"),
    )
}
#: The envelope version this package writes by default.
VERSION: Final = 2
#: No record may claim an instant before this (a clock that was never set reads 1970).
EARLIEST_TS: Final = datetime(1990, 1, 1, tzinfo=UTC)
_EARLIEST_TEXT: Final = EARLIEST_TS.strftime("%Y-%m-%dT%H:%M:%S")
#: How far a record's instants may lie after the moment the registry received it
#: (``check_not_future``): clocks of gateway and registry may disagree by this much.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)


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
    #: True for the person's own card-signed acts (``consent``, ``request``): the registry acts
    #: on them as soon as their signature verifies and never republishes them.
    person_act: bool = False


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
        # the person's own acts (issue 14): acted on by the registry, never republished
        KindInfo("consent", bodies.CardConsent, Tier.CONSENT, person_act=True),
        KindInfo("request", bodies.CardRequest, Tier.PRIVATE, person_act=True),
        # issue 15: an emergency profile sealed to one responder (kept as ciphertext only)
        KindInfo("profile", bodies.CardProfile, Tier.CONSENT, person_act=True),
    )
}
_KIND_OF_BODY: Final = {info.body: name for name, info in KINDS.items()}


#: The body fields (dotted paths) of each kind that name an instant the data was made at, beside
#: the envelope's ``ts``; a consent's ``until`` or a licence expiry is not one of them.
OCCURRED_AT: Final[dict[str, tuple[str, ...]]] = {
    "session.start": ("statement.started_at",),
    "session.end": ("ended_at",),
    "trip": ("start", "end"),
    "event": ("start",),
    "emergency": ("detected_at",),
    "stats": ("hour",),
    "dtc": (),
    "health": (),
    "gap": (),
    "consent": ("statement.signed_at",),
    "request": ("statement.signed_at",),
    "profile": ("statement.signed_at",),
}


def tier_of(kind: str) -> Tier:
    """Return the data tier of ``kind``; raises ``RecordError`` for an unknown kind."""
    return kind_info(kind).tier


def kind_info(kind: str) -> KindInfo:
    """Return what the protocol knows about ``kind``; raises ``RecordError`` if unknown."""
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise RecordError(f"unknown kind {str(kind)[:80]!r}", "kind") from None


def kind_of(body: bodies.Body) -> str:
    """Return the kind name of a body dataclass instance."""
    return _KIND_OF_BODY[type(body)]


def format_ts(seconds: float) -> str:
    """Return the wire form of a UTC instant in epoch seconds, to the millisecond."""
    moment = datetime.fromtimestamp(round(seconds, 3), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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

    def canonical(self, *, body_checked: bool = False) -> bytes:
        """Return the bytes that get signed (the canonical form of format ``v``); raises
        ``RecordError`` if the record is invalid or its format unknown.

        With ``body_checked`` the body is taken as valid (it was checked when it was built:
        ``body_from_json``, ``checked``), and only the envelope is checked here: the agent
        signs its own bodies without validating them a second time.
        """
        if body_checked:
            check_envelope(self)
        else:
            check_record_json(self.to_json())
        data = _encode(self)
        if len(data) > MAX_RECORD_BYTES:
            raise RecordError(f"{len(data)} bytes, more than {MAX_RECORD_BYTES}", "(record)")
        return data


def _encode(record: Record) -> bytes:
    """The canonical bytes of a checked record, in the form of its version (in one pass)."""
    try:
        return FORMATS[record.v].canonical(record)
    except CanonicalJsonError as exc:
        raise RecordError(str(exc), "body") from None


def _payload_bytes(data: bytes | str) -> bytes:
    """The payload as bytes, refused before any parsing if it is over the size bound."""
    if isinstance(data, str):
        if len(data) > MAX_RECORD_BYTES:  # a character is at least one byte
            raise RecordError(f"{len(data)} characters, more than {MAX_RECORD_BYTES}", "(record)")
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise RecordError("not UTF-8 (a lone surrogate)", "(record)") from None
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise RecordError(f"{type(data).__name__} is not a payload", "(record)")
    data = bytes(data)
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"{len(data)} bytes, more than {MAX_RECORD_BYTES}", "(record)")
    return data


def loads_strict(data: bytes | str) -> Any:
    """Parse a record payload's JSON: at most 64 KiB of UTF-8, no duplicate keys, no
    NaN/Infinity, bounded nesting and numbers (``msp_protocol.strictjson``); ``RecordError``
    for anything else, whatever the input."""
    return _loads(_payload_bytes(data), "(record)", RecordError)


def check_record_json(value: Any) -> None:
    """Validate a record's JSON value: the envelope and its kind's body schema, ``prev`` null
    exactly for seq 1, no instant before ``EARLIEST_TS``, a trip not ending before its start."""
    found = validator("envelope").validate_collecting(value, "date-time")
    kind, body = value["kind"], value["body"]
    found += validator(kind).validate_collecting(body, "date-time", "body")
    _check_prev(value["seq"], value["prev"])
    _check_times(kind, body, found)


def check_envelope(record: Record) -> None:
    """Validate everything of a record but its body's content: the envelope schema, ``prev``
    null exactly for seq 1, ``ts`` not before ``EARLIEST_TS``, a body of the kind's class.

    The fields that repeat from record to record (``v``, ``kind``, ``device``, ``vin``,
    ``session``) are checked once per distinct value (a small cache of what passed).
    """
    try:
        _check_repeating(record.v, record.kind, record.device, record.vin, record.session)
    except TypeError:  # unhashable, so not a JSON scalar: the check says what it is
        _check_repeating.__wrapped__(
            record.v, record.kind, record.device, record.vin, record.session
        )
    if type(record.body) is not KINDS[record.kind].body:
        shown = type(record.body).__name__
        raise RecordError(f"a {shown} is not the body of a {record.kind!r} record", "body")
    envelope = validator("envelope")
    envelope.validate_field("seq", record.seq)
    envelope.validate_field("prev", record.prev)
    envelope.validate_field("ts", record.ts)
    _check_prev(record.seq, record.prev)
    _check_times(record.kind, None, [("ts", record.ts)])


@lru_cache(maxsize=64, typed=True)
def _check_repeating(v: Any, kind: Any, device: Any, vin: Any, session: Any) -> None:
    fields = {"v": v, "kind": kind, "device": device, "vin": vin, "session": session}
    validator("envelope").validate_fields(fields, "date-time")


def check_body(kind: str, value: Any, path: str = "body") -> None:
    """Validate the JSON value of a body of ``kind``: its schema, no instant before
    ``EARLIEST_TS``, a trip not ending before its start. Raises ``RecordError`` naming the
    field (under ``path``); what passes may be signed as it is (``canonical(body_checked=...)``)."""
    kind_info(kind)
    found = validator(kind).validate_collecting(value, "date-time", path)
    _check_times(kind, value, found, path)


B = TypeVar("B", bound=bodies.Body)


def checked(body: B) -> B:
    """Return ``body`` after ``check_body`` of its JSON value: for a body the agent builds
    from its dataclasses, checked once when it is made."""
    check_body(kind_of(body), to_json(body))
    return body


def _check_prev(seq: Any, prev: Any) -> None:
    if (seq == 1) != (prev is None):
        raise RecordError("must be null exactly when seq is 1", "prev")


def _check_times(kind: str, body: Any, found: list[tuple[str, str]], path: str = "body") -> None:
    """The instants ``found`` (``(path, text)`` of date-time fields) are not before
    ``EARLIEST_TS``, and a trip's ``body`` (if given) does not end before its start."""
    for field, text in found:  # valid date-times: fixed width to the second, so text order
        if text[:19] < _EARLIEST_TEXT:
            raise RecordError(f"{text} is before {EARLIEST_TS.isoformat()}", field)
    if kind == "trip" and body is not None:
        start, end = body["start"], body["end"]
        if parse_ts(end) < parse_ts(start):
            raise RecordError(f"the trip ends at {end}, before its start {start}", f"{path}.end")


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
        v=int(value["v"]),
    )


def parse_record(data: bytes | str) -> Record:
    """Parse a signed record payload strictly; raises ``RecordError`` for anything else.

    Beyond ``loads_strict`` and ``check_record_json``: the payload must be byte for byte the
    canonical form of its format version (``FORMATS[v]``) of the record it parses to, so that
    one record has exactly one signed form.
    """
    raw = _payload_bytes(data)
    record = record_from_json(_loads(raw, "(record)", RecordError))
    canonical = _encode(record)
    if canonical != raw:
        at = next((i for i, (a, b) in enumerate(zip(raw, canonical, strict=False)) if a != b),
                  min(len(raw), len(canonical)))  # fmt: skip
        raise RecordError(
            f"not in the canonical form of format v{record.v} (differs at byte {at})", "(record)"
        )
    return record


def occurred_at(record: Record) -> tuple[tuple[str, datetime], ...]:
    """Return ``(field, instant)`` for each instant the record says its data was made at: the
    envelope's ``ts`` and the body fields of ``OCCURRED_AT[kind]``."""
    body = to_json(record.body)
    found = [("ts", parse_ts(record.ts))]
    for path in OCCURRED_AT.get(record.kind, ()):
        item: Any = body
        for step in path.split("."):
            item = item[step]
        found.append((f"body.{path}", parse_ts(item)))
    return tuple(found)


def check_not_future(
    record: Record, arrival: datetime, skew: timedelta = MAX_CLOCK_SKEW
) -> None:
    """Refuse a record claiming an instant more than ``skew`` after ``arrival`` (an aware
    datetime: when the registry received it). Raises ``RecordError`` naming the field.

    Old records are never refused here: a gateway may have been offline for weeks.
    """
    if arrival.tzinfo is None:
        raise ValueError("arrival must be an aware datetime")
    latest = arrival + skew
    for field, moment in occurred_at(record):
        if moment > latest:
            raise RecordError(
                f"{moment.isoformat()} is {moment - arrival} after the record arrived at "
                f"{arrival.isoformat()} (at most {skew} allowed)",
                field,
            )


def body_from_json(kind: str, value: Any) -> bodies.Body:
    """Check (``check_body``) and build the body of ``kind`` from JSON: for code that receives
    bodies alone, and for the agent's builders, whose bodies are then signed as they are."""
    info = kind_info(kind)
    check_body(kind, value)
    return from_json(info.body, value)
