"""RFC 8785 canonical JSON: the RFC's own number and key-order examples, and JSON round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.canonical import CanonicalJsonError, canonical_json
from msp_protocol.errors import RecordError
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
