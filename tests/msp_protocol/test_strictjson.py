"""Strict JSON: every input ends in a value or the caller's ProtocolError, with explicit bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msp_protocol.errors import ProtocolError, RecordError, SignatureError
from msp_protocol.strictjson import (
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_SAFE_INTEGER,
    loads_strict,
    nesting_depth,
)


def refused(data: bytes | str, error: type[ProtocolError] = RecordError) -> ProtocolError:
    with pytest.raises(error) as info:
        loads_strict(data, "here", error)
    assert info.value.field == "here"
    return info.value


def test_deep_nesting_is_refused_before_the_parser_recurses() -> None:
    # json.loads raises RecursionError on this; the caller gets its own error class.
    assert "nested deeper than 32" in str(refused("[" * 3000, SignatureError))
    assert "nested deeper" in str(refused('{"a":' * 3000))
    assert "nested deeper" in str(refused("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)))
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    value: Any = loads_strict(deepest, "here", RecordError)
    for _ in range(MAX_JSON_DEPTH - 1):
        (value,) = value
    assert value == []


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 500 + '\\"{' * 100, "b": ["]]]\\\\"]})
    assert nesting_depth(text) == 2
    assert loads_strict(text, "x", RecordError)["b"] == ["]]]\\\\"]
    # An unterminated string runs to the end: the depth scan stops there, the parser refuses.
    assert nesting_depth('["' + "\\" * 9 + "[[[[") == 1
    assert "not JSON" in str(refused('["' + "\\" * 9 + "[[[["))


def test_depth_scan_is_linear_on_hostile_quoting() -> None:
    # Quadratic backtracking would take minutes on this; the scan reads it once.
    text = '"' + '\\"' * 30_000
    assert nesting_depth(text) == 0
    assert "not JSON" in str(refused(text))


@pytest.mark.parametrize(
    "literal",
    ["1" * 5000, "-" + "9" * 5000, "1." + "0" * 5000, "1e" + "0" * 5000, "0." + "1" * 60],
)
def test_long_number_literals_are_refused(literal: str) -> None:
    # json.loads raises ValueError (Python's int digit limit) on the first two.
    error = refused('{"seq": ' + literal + "}")
    assert f"at most {MAX_NUMBER_CHARS}" in str(error)


@pytest.mark.parametrize("literal", ["1e999", "-1e400", "NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(literal: str) -> None:
    error = refused("[" + literal + "]")
    assert "range of a double" in str(error) or "is not JSON" in str(error)


def test_integers_beyond_2_53_are_read_as_the_double_they_denote() -> None:
    assert loads_strict(str(MAX_SAFE_INTEGER), "x", RecordError) == MAX_SAFE_INTEGER
    big = loads_strict("100000000000000000000", "x", RecordError)
    assert isinstance(big, float) and big == 1e20
    assert isinstance(loads_strict(str(MAX_SAFE_INTEGER), "x", RecordError), int)


def test_duplicate_keys_are_refused_at_any_depth() -> None:
    assert "duplicate key 'kid'" in str(refused('{"alg":"EdDSA","kid":"a","kid":"b"}'))
    assert "duplicate key 'x'" in str(refused('{"a":[{"x":1,"x":1}]}'))


@pytest.mark.parametrize(
    "data",
    [
        '{"a": 1}'.encode("utf-16"),  # json.loads would guess UTF-16 and accept it
        '{"a": 1}'.encode("utf-32-le"),
        b"\xef\xbb\xbf{}",  # UTF-8 BOM
        b"\xff{",
        b"{\"a\": \"\xed\xa0\x80\"}",  # an encoded surrogate is not UTF-8
    ],
)
def test_only_utf8_bytes_are_json(data: bytes) -> None:
    error = refused(data)
    assert "not UTF-8" in str(error) or "not JSON" in str(error)


def test_non_text_is_refused() -> None:
    assert "int is not JSON text" in str(refused(42))  # type: ignore[arg-type]


def _as_double_beyond_2_53(literal: str) -> int | float:
    value = int(literal)
    return value if abs(value) <= MAX_SAFE_INTEGER else float(value)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_give_a_value_or_the_callers_error(data: bytes) -> None:
    try:
        value = loads_strict(data, "x", SignatureError)
    except SignatureError as exc:
        assert exc.field == "x"
    else:
        assert value == json.loads(data, parse_int=_as_double_beyond_2_53)


@settings(max_examples=150, deadline=None)
@given(
    depth=st.integers(0, 4000),
    opener=st.sampled_from(["[", '{"k":', '[{"k":[', "[1,"]),
    closed=st.booleans(),
)
def test_any_nesting_depth_gives_a_value_or_a_refusal(
    depth: int, opener: str, closed: bool
) -> None:
    closer = {"[": "]", '{"k":': "}", '[{"k":[': "]}]", "[1,": "]"}[opener]
    text = opener * depth + "0" + (closer * depth if closed else "")
    levels = depth * opener.count("[") + depth * opener.count("{")
    try:
        value = loads_strict(text, "x", RecordError)
    except RecordError as exc:
        assert levels > MAX_JSON_DEPTH or (depth > 0 and not closed), exc
    else:
        assert (closed or depth == 0) and levels <= MAX_JSON_DEPTH
        assert value == json.loads(text)


@settings(max_examples=150, deadline=None)
@given(digits=st.integers(1, 6000), point=st.integers(0, 6000), exponent=st.integers(0, 999))
def test_any_number_gives_a_finite_value_or_a_refusal(
    digits: int, point: int, exponent: int
) -> None:
    literal = "7" * digits
    if point < digits:
        literal = literal[:point] + "." + literal[point:] if point else "0." + literal
    if exponent:
        literal += f"e{exponent}"
    try:
        value = loads_strict(f"[{literal}]", "x", RecordError)
    except RecordError as exc:
        assert len(literal) > MAX_NUMBER_CHARS or "range of a double" in str(exc), literal
    else:
        assert len(literal) <= MAX_NUMBER_CHARS
        assert value == [float(literal)] and value[0] < float("inf")
