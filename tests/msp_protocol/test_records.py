"""Records: every kind round-trips through its canonical bytes; bad input is named precisely."""

from __future__ import annotations

import json
from typing import Any

import pytest

from msp_protocol.canonical import canonical_json
from msp_protocol.errors import RecordError
from msp_protocol.records import (
    KINDS,
    MAX_RECORD_BYTES,
    Record,
    Tier,
    format_ts,
    parse_record,
    parse_ts,
    tier_of,
)
from tests.protocol_data import DEVICE, VIN, body, body_json


def envelope(of: str = "trip", **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "v": 1, "kind": of, "device": DEVICE, "vin": VIN, "seq": 2,
        "prev": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
        "ts": "2026-11-26T10:15:30.123Z", "session": "s-1", "body": body_json(of),
    }  # fmt: skip
    value.update(changes)
    return value


def rejected(value: Any) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(value))
    return info.value


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_round_trips_through_canonical_bytes(kind: str) -> None:
    record = Record(
        kind=kind, device=DEVICE, vin=VIN, seq=1, prev=None,
        ts="2026-11-26T10:15:30.123Z", session=None, body=body(kind),
    )  # fmt: skip
    data = record.canonical()
    assert data == canonical_json(json.loads(data))
    again = parse_record(data)
    assert again == record
    assert again.canonical() == data


def test_tiers_follow_the_design() -> None:
    assert {k: tier_of(k) for k in KINDS} == {
        "session.start": Tier.CONSENT, "session.end": Tier.CONSENT, "trip": Tier.CONSENT,
        "event": Tier.CONSENT, "dtc": Tier.CONSENT, "emergency": Tier.CONSENT,
        "stats": Tier.PUBLIC, "health": Tier.PRIVATE, "gap": Tier.PRIVATE,
    }  # fmt: skip
    assert [k for k, info in KINDS.items() if info.pre_consented] == ["emergency"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"kind": "selfie"}, "kind", "is not one of"),
        ({"v": 3}, "v", "is not one of [1, 2]"),
        ({"v": 2.5}, "v", "is not one of [1, 2]"),
        ({"seq": 0}, "seq", "below the minimum"),
        ({"seq": "2"}, "seq", "expected integer"),
        ({"seq": True}, "seq", "expected integer"),
        ({"device": "gw/+"}, "device", "does not match"),
        ({"vin": "X" * 40}, "vin", "longer than 32"),
        ({"ts": "2026-11-26 10:15:30Z"}, "ts", "does not match"),
        ({"ts": "2026-02-30T10:15:30Z"}, "ts", "not a valid date-time"),
        ({"prev": None}, "prev", "null exactly when seq is 1"),
        ({"seq": 1}, "prev", "null exactly when seq is 1"),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
def test_bad_envelopes_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    error = rejected(envelope(**change))
    assert error.field == field
    assert words in str(error)


def test_missing_envelope_field_is_named() -> None:
    value = envelope()
    del value["session"]
    error = rejected(value)
    assert (error.field, "missing" in str(error)) == ("session", True)


@pytest.mark.parametrize(
    ("kind", "path", "new", "field", "words"),
    [
        ("trip", ["distance_km"], -1.0, "body.distance_km", "below the minimum"),
        ("trip", ["night_share"], 1.5, "body.night_share", "above the maximum"),
        ("trip", ["score"], "good", "body.score", "expected number or null"),
        ("trip", ["events", "texting"], 1, "body.events.texting (name)", "is not one of"),
        ("trip", ["events", "speeding"], -1, "body.events.speeding", "below the minimum"),
        ("event", ["severity"], "mild", "body.severity", "is not one of"),
        ("event", ["location", "lat"], 91.0, "body.location.lat", "above the maximum"),
        ("dtc", ["codes", 1, "code"], "X9999", "body.codes[1].code", "does not match"),
        ("dtc", ["mil"], 1, "body.mil", "expected boolean"),
        ("session.start", ["statement", "licence", "expiry"], "2029-02-30",
         "body.statement.licence.expiry", "not a valid date"),
        ("session.start", ["statement", "vehicle_class"], "x" * 33,
         "body.statement.vehicle_class", "longer than 32"),
        ("gap", ["ranges"], [], "body.ranges", "at least 1"),
        ("health", ["errors", "Bad Name"], 1, "body.errors.Bad Name (name)", "does not match"),
    ],
)  # fmt: skip
def test_bad_bodies_name_the_field(
    kind: str, path: list[Any], new: Any, field: str, words: str
) -> None:
    value = envelope(kind)
    target = value["body"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    error = rejected(value)
    assert error.field == field
    assert words in str(error)


def test_missing_and_extra_body_fields_are_named() -> None:
    value = envelope("event")
    del value["body"]["peak"]
    assert rejected(value).field == "body.peak"
    value = envelope("event")
    value["body"]["driver_name"] = "Taro"
    assert rejected(value).field == "body.driver_name"


def test_oversized_payload_is_refused_before_parsing() -> None:
    value = envelope("health")
    value["body"]["errors"] = {f"e{i}": i for i in range(64)}
    data = json.dumps(value) + " " * MAX_RECORD_BYTES
    with pytest.raises(RecordError, match="more than 65536") as info:
        parse_record(data)
    assert info.value.field == "(record)"


def test_duplicate_keys_nan_and_non_json_are_refused() -> None:
    text = json.dumps(envelope())
    dup = text.replace('"v": 1,', '"v": 1, "v": 1,')
    with pytest.raises(RecordError, match="duplicate key"):
        parse_record(dup)
    with pytest.raises(RecordError, match="NaN is not JSON"):
        parse_record(text.replace('"distance_km": 23.4', '"distance_km": NaN'))
    with pytest.raises(RecordError, match="not UTF-8"):
        parse_record(b"\xff{")
    with pytest.raises(RecordError, match="not JSON"):
        parse_record(b"{")
    with pytest.raises(RecordError, match="expected object"):
        parse_record("[1, 2]")


def test_a_body_of_the_wrong_kind_cannot_be_signed() -> None:
    record = Record(
        kind="trip", device=DEVICE, vin=VIN, seq=1, prev=None,
        ts="2026-11-26T10:15:30.123Z", session=None, body=body("event"),
    )  # fmt: skip
    with pytest.raises(RecordError, match="required field is missing"):
        record.canonical()


def test_timestamps_are_utc_milliseconds() -> None:
    assert format_ts(1_795_688_130.1234) == "2026-11-26T10:15:30.123Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"
    assert parse_ts("2026-11-26T10:15:30.123Z").timestamp() == pytest.approx(1_795_688_130.123)
