"""Consent categories: parsing, the kinds each covers, time checks and location stripping."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol import bodies
from msp_protocol.consent import (
    CATEGORIES,
    KINDS_OF,
    category_of,
    data_time,
    grants,
    parse_categories,
    strip_location,
    valid_at,
)
from msp_protocol.errors import ProtocolError
from msp_protocol.records import KINDS, Record, Tier, format_ts, parse_ts
from tests.sync_kit import T0, event, trip


def test_every_consent_tier_kind_but_the_pre_consented_has_exactly_one_category() -> None:
    for name, info in KINDS.items():
        if info.tier is Tier.CONSENT and not (info.pre_consented or info.person_act):
            assert category_of(name) is not None, name
        elif info.tier is Tier.PUBLIC:  # contributions to public statistics: their own category
            assert category_of(name) == "public", name
        else:
            assert category_of(name) is None, name
    assert category_of("dtc") == "maintenance" and category_of("trip") == "driving"
    assert sum(len(kinds) for kinds in KINDS_OF.values()) == len(
        {k for kinds in KINDS_OF.values() for k in kinds})  # no kind in two categories


def test_parse_categories_orders_and_deduplicates() -> None:
    assert parse_categories("score, driving,score,") == ("driving", "score")
    assert parse_categories(["location"]) == ("location",)
    assert parse_categories("") == ()


def test_parse_categories_names_the_unknown_ones() -> None:
    with pytest.raises(ProtocolError, match=r"categories: unknown consent categories 'event', "
                                            r"'trip' \(known: driving, maintenance, score, "
                                            r"location, alerts, emergency, public\)"):  # fmt: skip
        parse_categories("trip,driving,event")


@settings(max_examples=60)
@given(st.lists(st.text(min_size=1, max_size=12).filter(lambda s: "," not in s), max_size=6))
def test_parse_categories_accepts_exactly_the_known(items: list[str]) -> None:
    known = {i.strip() for i in items} - {""}
    if known <= set(CATEGORIES):
        assert set(parse_categories(items)) == known
    else:
        with pytest.raises(ProtocolError):
            parse_categories(items)


def record(body: bodies.Body, kind: str, ts: float) -> Record:
    return Record(kind, "gw-1", "JT1", 2, "x", format_ts(ts), "s-1", body)


def test_data_time_is_the_latest_instant_the_data_covers() -> None:
    t = trip()  # ends at T0 + 900
    assert data_time(record(t, "trip", T0 + 10)) == parse_ts(t.end)
    assert data_time(record(t, "trip", T0 + 2000)) == parse_ts(format_ts(T0 + 2000))
    e = replace(event(), start=format_ts(T0 + 300))
    assert data_time(record(e, "event", T0 + 100)) == parse_ts(e.start)


def test_a_consent_grants_one_recipient_its_categories_until_it_ends() -> None:
    c = bodies.Consent("acme", ("driving", "score"), format_ts(T0 + 100))
    at = parse_ts(format_ts(T0 + 99.999))
    assert grants(c, "acme", "driving", at) and grants(c, "acme", "score", at)
    assert not grants(c, "acme", "maintenance", at)
    assert not grants(c, "other", "driving", at)
    assert not valid_at(c, parse_ts(c.until))  # until is exclusive
    assert not valid_at(replace(c, until="2026-13-45T00:00:00Z"), at)  # no real instant


def test_strip_location_removes_positions_only() -> None:
    stripped, removed = strip_location(event())
    assert removed and isinstance(stripped, bodies.Event) and stripped.location is None
    assert replace(stripped, location=event().location) == event()
    crash = bodies.Emergency(format_ts(T0), "crash_flag", 31.0, 54.0, bodies.Location(1.0, 2.0))
    assert strip_location(crash)[0] == replace(crash, location=None)
    assert strip_location(trip()) == (trip(), False)
    assert strip_location(replace(event(), location=None))[1] is False
