"""Records: every kind round-trips through its canonical bytes; bad input is named precisely."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.bodies import Emergency
from msp_protocol.canonical import canonical_json, canonical_json_v1
from msp_protocol.errors import RecordError
from msp_protocol.records import (
    FORMATS,
    KINDS,
    MAX_RECORD_BYTES,
    OCCURRED_AT,
    VERSION,
    Record,
    Tier,
    body_from_json,
    check_not_future,
    checked,
    format_ts,
    occurred_at,
    parse_record,
    parse_ts,
    record_from_json,
    tier_of,
)
from msp_protocol.schema import load_schema
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
        "consent": Tier.CONSENT, "request": Tier.PRIVATE, "profile": Tier.CONSENT,
    }  # fmt: skip
    assert [k for k, info in KINDS.items() if info.pre_consented] == ["emergency"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"kind": "selfie"}, "kind", "is not one of"),
        ({"v": 3}, "v", "is not one of [1, 2]"),
        ({"v": 2.5}, "v", "expected integer"),
        ({"v": True}, "v", "expected integer"),  # Python's True == 1 let it through before
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


# --- Strictness (issue 17): each of these was accepted before. ---------------------------------


def _signed_bytes(value: dict[str, Any]) -> bytes:
    """The v2 (RFC 8785) bytes of a record value, whatever it holds."""
    return canonical_json(value)


def refused_bytes(data: bytes) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse_record(data)
    return info.value


@pytest.mark.parametrize(
    "spelling",
    [
        lambda v: json.dumps(v).encode(),  # spaces after separators
        lambda v: json.dumps(v, separators=(",", ":")).encode(),  # keys not sorted
        lambda v: canonical_json(v).replace(b'"max_speed_kmh":82', b'"max_speed_kmh":82.0'),
        lambda v: canonical_json(v).replace(b'"night_share":0', b'"night_share":0e0'),
        lambda v: canonical_json(v).replace(b'"device"', b'"\\u0064evice"'),
        lambda v: canonical_json(v) + b"\n",
    ],
)
def test_a_payload_not_in_canonical_form_is_refused(spelling: Any) -> None:
    value = envelope(v=2)
    assert parse_record(canonical_json(value)).to_json() == value
    error = refused_bytes(spelling(value))
    assert error.field == "(record)"
    assert "not in the canonical form of format v2" in str(error)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("session", "s-1\n"),
        ("device", DEVICE + "\n"),
        ("vin", VIN + "\n"),
        ("ts", "2026-11-26T10:15:30.123Z\n"),
    ],
)
def test_a_trailing_newline_does_not_match_a_pattern(field: str, bad: str) -> None:
    error = refused_bytes(_signed_bytes(envelope(v=2, **{field: bad})))
    assert error.field == field
    assert "does not match" in str(error) or "not a valid date-time" in str(error)


def test_a_trip_ending_before_it_starts_is_refused() -> None:
    value = envelope("trip", v=2)
    value["body"]["start"], value["body"]["end"] = value["body"]["end"], value["body"]["start"]
    error = refused_bytes(_signed_bytes(value))
    assert error.field == "body.end"
    assert "before its start" in str(error)
    value["body"]["end"] = value["body"]["start"]  # a zero-length trip is a trip
    assert parse_record(_signed_bytes(value)).kind == "trip"


@pytest.mark.parametrize(
    ("kind", "path", "field"),
    [
        ("trip", ["ts"], "ts"),
        ("event", ["body", "start"], "body.start"),
        ("emergency", ["body", "detected_at"], "body.detected_at"),
        ("session.start", ["body", "statement", "started_at"], "body.statement.started_at"),
        ("session.start", ["body", "statement", "consents", 0, "until"],
         "body.statement.consents[0].until"),
    ],
)  # fmt: skip
def test_any_instant_before_1990_is_refused(kind: str, path: list[Any], field: str) -> None:
    value = envelope(kind, v=2)
    target = value
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "1970-01-01T00:00:00.000Z"  # a clock that was never set
    error = refused_bytes(_signed_bytes(value))
    assert error.field == field
    assert "before 1990-01-01" in str(error)
    target[path[-1]] = "1990-01-01T00:00:00Z"
    assert parse_record(_signed_bytes(value)).kind == kind


def test_old_records_are_accepted() -> None:
    value = envelope("event", v=2, ts="1995-03-01T00:00:00.000Z")
    value["body"]["start"] = "1995-02-28T23:59:00.000Z"
    assert parse_record(_signed_bytes(value)).ts == "1995-03-01T00:00:00.000Z"


def test_a_string_that_is_not_unicode_is_refused() -> None:
    value = envelope("session.start", v=2)
    text = canonical_json(value).replace(b'"vehicle_class":"ordinary"',
                                         b'"vehicle_class":"\\ud800"')  # fmt: skip
    error = refused_bytes(text)
    assert "lone surrogate" in str(error) or "non-UTF-8" in str(error)


@pytest.mark.parametrize("data", [None, 42, ["{}"], "\ud800", "x" * (MAX_RECORD_BYTES + 1)])
def test_anything_that_is_not_a_payload_is_a_record_error(data: Any) -> None:
    with pytest.raises(RecordError) as info:
        parse_record(data)
    assert info.value.field == "(record)"


# --- Format versions: v2 (RFC 8785) written, v1 (legacy form) still read. -----------------------


def _trip(v: int, fuel_l: float = 4.8e-06) -> Record:
    value = envelope("trip", v=v)
    value["body"]["fuel_l"] = fuel_l
    return record_from_json(value)


def test_the_envelope_schema_lists_every_format_and_v2_is_written() -> None:
    assert load_schema("envelope")["properties"]["v"]["enum"] == sorted(FORMATS)
    assert VERSION == 2
    assert Record("trip", DEVICE, VIN, 1, None, "2026-11-26T10:15:30.123Z", None,
                  body("trip")).v == 2  # fmt: skip


def test_v2_signs_rfc8785_and_keeps_every_double() -> None:
    record = _trip(VERSION)
    data = record.canonical()
    assert data == rfc8785.dumps(record.to_json())
    assert b'"fuel_l":0.0000048' in data and data.startswith(b'{"body":')
    again = parse_record(data)
    assert again.body.fuel_l == 4.8e-06  # type: ignore[union-attr]
    assert again == record and again.canonical() == data


def test_v1_records_are_still_read_in_their_own_form() -> None:
    record = _trip(1)
    data = record.canonical()
    assert data == canonical_json_v1(record.to_json())
    assert b'"fuel_l":0.000005,' in data and b'"v":1' in data  # what v1 wrote, rounded
    again = parse_record(data)
    assert again.v == 1 and again.body.fuel_l == 5e-06  # type: ignore[union-attr]
    assert again.canonical() == data


def test_each_version_is_checked_against_its_own_canonical_form() -> None:
    v1_labelled_rfc8785 = rfc8785.dumps(_trip(1).to_json())  # 0.0000048: not what v1 writes
    error = refused_bytes(v1_labelled_rfc8785)
    assert "canonical form of format v1" in str(error)
    assert refused_bytes(_trip(2).canonical().replace(b'"v":2', b'"v":1')).field == "(record)"
    # The forms differ outside the schemas' ranges too: exact digits against shortest ones.
    assert canonical_json_v1(2.0**60) == b"1152921504606846976"
    assert canonical_json(2.0**60) == b"1152921504606847000"


@settings(max_examples=100, deadline=None)
@given(
    fuel=st.floats(0, 10000, allow_nan=False) | st.floats(1e-9, 1e-3),
    v=st.sampled_from(sorted(FORMATS)),
)
def test_every_format_round_trips_its_own_bytes(fuel: float, v: int) -> None:
    data = _trip(v, fuel).canonical()
    assert data == FORMATS[v].canonical(json.loads(data))
    assert parse_record(data).canonical() == data


# --- The registry's future check. ---------------------------------------------------------------

ARRIVAL = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def test_instants_in_the_future_beyond_the_skew_are_refused() -> None:
    record = _trip(VERSION)  # ts 10:15:30.123, trip 08:01 to 08:41:30.5
    check_not_future(record, ARRIVAL)
    check_not_future(record, datetime(2026, 11, 26, 10, 10, 30, 123000, tzinfo=UTC))  # skew
    with pytest.raises(RecordError) as info:
        check_not_future(record, datetime(2026, 11, 26, 10, 10, 30, 122000, tzinfo=UTC))
    assert info.value.field == "ts"
    assert "after the record arrived" in str(info.value)
    early = _trip(VERSION)
    early = record_from_json({**early.to_json(), "ts": "2026-11-26T08:00:00.000Z"})
    with pytest.raises(RecordError) as info:
        check_not_future(early, datetime(2026, 11, 26, 8, 30, tzinfo=UTC))
    assert info.value.field == "body.end"  # ends 08:41:30.5, after 08:30 + 5 min
    check_not_future(early, datetime(2026, 11, 26, 8, 30, tzinfo=UTC), timedelta(minutes=12))


def test_old_records_are_not_refused_by_the_future_check() -> None:
    check_not_future(_trip(VERSION), ARRIVAL + timedelta(days=400))


def test_occurred_at_names_the_instants_of_every_kind() -> None:
    assert set(OCCURRED_AT) == set(KINDS)
    start = record_from_json(envelope("session.start", v=2, seq=1, prev=None))
    assert [f for f, _ in occurred_at(start)] == ["ts", "body.statement.started_at"]
    consent_until = parse_ts("2027-11-26T00:00:00Z")  # a consent ends in the future: not an instant
    assert consent_until not in [t for _, t in occurred_at(start)]
    trip = occurred_at(_trip(VERSION))
    assert trip[2] == ("body.end", parse_ts("2026-11-26T08:41:30.500Z"))
    with pytest.raises(ValueError, match="aware"):
        check_not_future(_trip(VERSION), datetime(2026, 11, 26))


# -- bodies checked once, when made; records of checked bodies signed with the envelope checked


def _record(kind: str = "trip", **changes: Any) -> Record:
    fields: dict[str, Any] = {
        "kind": kind, "device": DEVICE, "vin": VIN, "seq": 2,
        "prev": "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
        "ts": "2026-11-26T10:15:30.123Z", "session": "s-1",
        "body": changes.pop("body") if "body" in changes else body(kind),
    }  # fmt: skip
    fields.update(changes)
    return Record(**fields)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)), seq=st.integers(1, 2**53 - 1),
    seconds=st.floats(631152000.0, 4102444800.0), session=st.none() | st.from_regex(
        r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
)  # fmt: skip
def test_a_checked_body_signs_the_very_bytes_of_the_full_check(
    kind: str, seq: int, seconds: float, session: str | None
) -> None:
    prev = None if seq == 1 else "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg"
    record = _record(kind, seq=seq, prev=prev, ts=format_ts(seconds), session=session)
    data = record.canonical(body_checked=True)
    assert data == record.canonical() == rfc8785.dumps(record.to_json())
    assert parse_record(data) == record


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"session": "spaces are not allowed"}, "session"), ({"ts": "1970-01-01T00:00:00Z"}, "ts"),
        ({"ts": "2026-02-30T00:00:00Z"}, "ts"), ({"seq": 1}, "prev"), ({"prev": None}, "prev"),
        ({"seq": 0}, "seq"), ({"seq": True}, "seq"), ({"vin": "jtd"}, "vin"),
        ({"device": "gw/1"}, "device"), ({"kind": "texting", "body": body("trip")}, "kind"),
        ({"v": 3}, "v"),
        ({"v": True}, "v"), ({"body": body("event")}, "body"),
    ],
)  # fmt: skip
def test_a_checked_body_still_gets_its_envelope_checked(change: dict[str, Any], field: str) -> None:
    _record(v=1).canonical(body_checked=True)  # v=1 and v=True: the check caches by type too
    record = _record(**dict(change))
    with pytest.raises(RecordError) as info:
        record.canonical(body_checked=True)
    assert info.value.field == field
    with pytest.raises(RecordError):
        record.canonical()


@pytest.mark.parametrize(
    ("kind", "path", "field"),
    [
        ("event", ["start"], "body.start"), ("trip", ["start"], "body.start"),
        ("emergency", ["detected_at"], "body.detected_at"),
        ("session.start", ["statement", "started_at"], "body.statement.started_at"),
    ],
)  # fmt: skip
def test_a_body_is_checked_in_full_when_made_instants_included(
    kind: str, path: list[str], field: str
) -> None:
    # Before the outbox stopped checking bodies again, only the schema was checked here.
    value = body_json(kind)
    target = value
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "1970-01-01T00:00:00.000Z"
    with pytest.raises(RecordError, match="before 1990") as info:
        body_from_json(kind, value)
    assert info.value.field == field


def test_a_trip_body_ending_before_its_start_is_refused_when_made() -> None:
    value = body_json("trip")
    value["start"], value["end"] = value["end"], value["start"]
    with pytest.raises(RecordError, match="before its start") as info:
        body_from_json("trip", value)
    assert info.value.field == "body.end"


def test_checked_returns_a_valid_body_and_refuses_an_invalid_one() -> None:
    good = body("emergency")
    assert checked(good) is good
    with pytest.raises(RecordError) as info:
        checked(Emergency("2026-11-26T10:15:30.123Z", "deceleration", 1e6, 50.0, None))
    assert info.value.field == "body.peak_decel_ms2"
