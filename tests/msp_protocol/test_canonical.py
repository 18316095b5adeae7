"""RFC 8785 canonical JSON: the RFC's own number and key-order examples, JSON round trips, and
the one-pass writer against the reference implementation (``rfc8785``) on any value."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.bodies import Location
from msp_protocol.canonical import CanonicalJsonError, canonical_json
from msp_protocol.codec import to_json
from msp_protocol.errors import RecordError
from msp_protocol.records import KINDS
from msp_protocol.strictjson import loads_strict


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.0, "0"), (-0.0, "0"), (1e21, "1e+21"), (1e-7, "1e-7"), (1e23, "1e+23"),
        (333333333.3333333, "333333333.3333333"), (5e-324, "5e-324"), (0.000001, "0.000001"),
        (100.0, "100"), (-1.5, "-1.5"), (9007199254740992.0, "9007199254740992"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)  # fmt: skip
def test_numbers_follow_ecmascript(number: float, text: str) -> None:
    assert canonical_json(number) == text.encode()


def test_keys_sort_by_utf16_code_units_rfc8785_example() -> None:
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_strings_escape_only_what_json_requires() -> None:
    assert canonical_json('a"\\\n\u00e9\x1f/') == '"a\\"\\\\\\n\u00e9\\u001f/"'.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: "x"}, {1, 2}, b"x"])
def test_values_without_json_form_are_refused(bad: object) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(value=json_values)
def test_canonical_form_is_json_and_a_fixed_point(value: object) -> None:
    data = canonical_json(value)
    parsed = loads_strict(data, "x", RecordError)
    assert canonical_json(parsed) == data


def _reference(value: object) -> bytes | None:
    """What the ``rfc8785`` package writes for ``value``, or None if it refuses it."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return None


def _ours(value: object) -> bytes | None:
    try:
        return canonical_json(value)
    except CanonicalJsonError:
        return None


# Every float magnitude (both sides of 1e-4, 1e-7, 2**53, 1e21), any integer, any text
# (astral and private-use characters, whose UTF-16 and code point orders differ; controls;
# lone surrogates), as values and as keys.
_floats = st.floats() | st.sampled_from([1e-4, 9.99e-5, 1e-7, 2.0**53, 2.0**53 - 1, 1e21, -0.0])
_chars = st.characters(exclude_categories=())  # surrogates too
_keys = st.text(alphabet=_chars, max_size=4) | st.sampled_from(
    ["\ue000", "\U0001f600", "\ufb33", "a\x00"]
)
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _floats | st.text(alphabet=_chars, max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=any_values)
def test_the_one_pass_writer_writes_what_rfc8785_writes_and_refuses_what_it_refuses(
    value: object,
) -> None:
    assert _ours(value) == _reference(value)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(KINDS)))
def test_a_body_dataclass_is_written_as_rfc8785_writes_its_json(
    data: st.DataObject, kind: str
) -> None:
    # Any field values of the declared types (NaN, huge numbers, any text included): the
    # generated writer of each dataclass gives the bytes of RFC 8785 over its JSON value.
    body = data.draw(st.from_type(KINDS[kind].body))
    assert _ours(body) == _reference(to_json(body))


@pytest.mark.parametrize("value", [{"\ud800": 1}, {"a": {"\udfff": None}}, ["\ud800"]])
def test_a_lone_surrogate_is_refused_as_not_canonical_json(value: object) -> None:
    # found by hypothesis: as a key, rfc8785 let a UnicodeEncodeError escape
    with pytest.raises(CanonicalJsonError, match=r"not valid Unicode|non-UTF-8"):
        canonical_json(value)


def test_a_dataclass_field_of_another_type_than_declared_is_written_as_its_value() -> None:
    odd = Location(lat=45, lon="east")  # type: ignore[arg-type]
    assert canonical_json(odd) == b'{"lat":45,"lon":"east"}'
    assert canonical_json(Location(lat=1e-9, lon=2.0**60)) == rfc8785.dumps(
        {"lat": 1e-9, "lon": 2.0**60}
    )
