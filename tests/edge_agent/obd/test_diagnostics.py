"""DTC and VIN decoding: hand-computed examples, round trips, and what is reported or refused."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.obd.diagnostics import (
    check_digit,
    decode_dtc,
    dtc_answer,
    encode_dtc,
    parse_dtcs,
    parse_vin,
    validate_vin,
    vin_answer,
)
from edge_agent.obd.errors import MalformedResponseError


@pytest.mark.parametrize(
    ("pair", "code"),
    [("0133", "P0133"), ("4035", "C0035"), ("9234", "B1234"), ("C100", "U0100"), ("3FFF", "P3FFF")],
)
def test_dtc_by_hand(pair: str, code: str) -> None:
    assert decode_dtc(bytes.fromhex(pair)) == code
    assert encode_dtc(code) == bytes.fromhex(pair)


def test_every_dtc_word_round_trips() -> None:
    for word in range(1 << 16):
        pair = word.to_bytes(2, "big")
        assert encode_dtc(decode_dtc(pair)) == pair


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A[PCBU][0-3][0-9A-F]{3}\Z"))
def test_dtc_code_round_trips(code: str) -> None:
    assert decode_dtc(encode_dtc(code)) == code


@pytest.mark.parametrize("code", ["P4133", "X0133", "P013", "P01G3"])
def test_malformed_dtc_code_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="not a letter"):
        encode_dtc(code)


def test_parse_dtcs_skips_padding_and_keeps_codes() -> None:
    assert parse_dtcs(bytes.fromhex("4303013340350000"), 0x03) == ["P0133", "C0035"]
    assert parse_dtcs(dtc_answer(0x07, ["P0420"]), 0x07) == ["P0420"]
    assert parse_dtcs(bytes.fromhex("4300"), 0x03) == []
    assert parse_dtcs(bytes.fromhex("4A01D123"), 0x0A) == ["U1123"]  # permanent


def test_parse_dtcs_keeps_codes_when_the_count_disagrees(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        codes = parse_dtcs(bytes.fromhex("430501334035"), 0x03, "7E8")
    assert codes == ["P0133", "C0035"]
    assert "says 5 codes but carries 2" in caplog.text


@pytest.mark.parametrize(
    ("payload", "message"),
    [("470101", "expected a mode 03 answer"), ("43010133FF", "not count \\+ 2-byte codes")],
)
def test_parse_dtcs_refuses_malformed_answers(payload: str, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=f"ECU 7E9: .*{message}"):
        parse_dtcs(bytes.fromhex(payload), 0x03, "7E9")


def test_check_digit_by_hand() -> None:
    assert check_digit("1HGCM82633A004352") == "3"
    assert check_digit("11111111111111111") == "1"
    assert check_digit("1M8GDM9AXKP042788") == "X"


def test_vin_with_good_check_digit() -> None:
    vin = parse_vin(vin_answer("1HGCM82633A004352"), "7E8")
    assert (vin.vin, vin.check_digit_ok) == ("1HGCM82633A004352", True)


def test_failed_check_digit_is_reported_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        vin = validate_vin("1HGCM82643A004352", "7E8")
    assert vin.check_digit_ok is False
    assert "fails its check digit (expected 3)" in caplog.text


def test_region_without_check_digit_is_not_judged() -> None:
    # Japanese and European makers need not fill position 9 with a check digit.
    assert validate_vin("JTDKB20U993123456").check_digit_ok is None
    assert validate_vin("WVWZZZ1JZXW000001").check_digit_ok is None


def test_vin_nul_padding_is_dropped() -> None:
    assert parse_vin(b"\x49\x02\x01\x00\x00" + b"JTDKB20U993123456").vin == "JTDKB20U993123456"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (vin_answer("JTDKB20U99312345"), "has 16 characters, not 17"),
        (b"\x49\x02\x01" + b"JTDKB20U99312345O", "outside A-Z 0-9 without I O Q: \\['O'\\]"),
        (b"\x49\x02\x01" + b"JTDKB20U99312345\xe9", "not ASCII"),
        (b"\x49\x04\x01", "expected a VIN answer"),
    ],
)
def test_bad_vin_is_refused_with_a_reason(payload: bytes, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=f"ECU 7E8: .*{message}"):
        parse_vin(payload, "7E8")
