"""Licence data (WEF02): era dates, our category TLVs, and malformed input."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.card.errors import CardDataError
from edge_agent.card.licence import (
    KNOWN_CATEGORIES,
    LicenceData,
    encode_japanese_date,
    encode_licence_data,
    parse_japanese_date,
    parse_licence_data,
)


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        (b"5090131", date(2027, 1, 31)),
        (b"5010501", date(2019, 5, 1)),
        (b"4310430", date(2019, 4, 30)),
        (b"3640107", date(1989, 1, 7)),
    ],
)
def test_era_dates(raw: bytes, day: date) -> None:
    assert parse_japanese_date(raw, "x") == day


@pytest.mark.parametrize("raw", [b"5091331", b"9090131", b"50901", b"5O90131", b"\xff" * 7])
def test_bad_era_dates_name_the_field(raw: bytes) -> None:
    with pytest.raises(CardDataError, match="tag C5"):
        parse_japanese_date(raw, "licence data tag C5")


def test_the_expiry_tag_layout_matches_the_public_sources() -> None:
    raw = encode_licence_data(LicenceData(date(2027, 1, 31), ("普通",)))
    assert raw[:9] == b"\xc5\x07" + b"5090131"


@settings(max_examples=60)
@given(
    st.dates(min_value=date(2019, 5, 1), max_value=date(2117, 12, 31)),
    st.lists(st.sampled_from(KNOWN_CATEGORIES), max_size=6, unique=True),
)
def test_encode_then_parse_round_trips(expiry: date, categories: list[str]) -> None:
    licence = LicenceData(expiry, tuple(categories))
    assert parse_licence_data(encode_licence_data(licence)) == licence


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_give_a_card_data_error(raw: bytes) -> None:
    try:
        licence = parse_licence_data(raw)
    except CardDataError as exc:
        assert "licence data EF 001B" in str(exc)
    else:
        assert isinstance(licence.expiry, date)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xd0\x06\xe6\x99\xae\xe9\x80\x9a", "no expiry"),
        (b"\xc5\x09" + b"5090131", "claims 9 bytes"),
        (b"\xc5", "has no length"),
        (b"\xc5\x84\x00\x00\x00\x07", "bad length byte 84"),
        (b"\xc5\x075090131\xd0\x02\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_licence_data_is_named(raw: bytes, message: str) -> None:
    with pytest.raises(CardDataError, match=message):
        parse_licence_data(raw)


def test_padding_ends_the_data() -> None:
    raw = encode_licence_data(LicenceData(date(2030, 1, 1), ("中型",))) + b"\xff" * 20
    assert parse_licence_data(raw).categories == ("中型",)


def test_dates_before_reiwa_are_not_encoded() -> None:
    with pytest.raises(ValueError, match="Reiwa"):
        encode_japanese_date(date(2019, 4, 30))
