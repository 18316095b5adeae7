"""The shipped JSON Schemas: valid Draft 2020-12, in step with the dataclasses, and our
validator agrees with an independent one (jsonschema) on valid and mutated bodies."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from msp_protocol.errors import RecordError
from msp_protocol.records import KINDS
from msp_protocol.schema import KEYWORDS, Validator, load_schema, validator
from tests.protocol_data import body_json

NAMES = ["envelope", *KINDS]


def _keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key == "properties":
                for sub in value.values():
                    found |= _keywords(sub)
            elif isinstance(value, dict):
                found |= _keywords(value)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_draft_2020_12_and_uses_only_known_keywords(name: str) -> None:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert _keywords(schema) <= KEYWORDS
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("kind", list(KINDS))
def test_dataclass_fields_match_schema_properties(kind: str) -> None:
    fields = [f.name for f in dataclasses.fields(KINDS[kind].body)]
    schema = load_schema(kind)
    assert fields == list(schema["properties"])
    assert sorted(schema["required"]) == sorted(fields)


@pytest.mark.parametrize("kind", list(KINDS))
def test_fixture_bodies_pass_both_validators(kind: str) -> None:
    value = body_json(kind)
    validator(kind).validate(value, "body")
    assert list(jsonschema.Draft202012Validator(load_schema(kind)).iter_errors(value)) == []


def _ours_accepts(kind: str, value: Any) -> bool:
    try:
        validator(kind).validate(value, "body")
    except RecordError:
        return False
    return True


def _theirs_accepts(kind: str, value: Any) -> bool:
    return jsonschema.Draft202012Validator(
        load_schema(kind), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).is_valid(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_a_pattern_must_match_the_whole_string() -> None:
    # ECMA-262, JSON Schema's dialect: "$" is the end of the string. Python's re.search (used by
    # jsonschema, and by our validator before) also lets "$" match before a final newline.
    body = body_json("dtc")
    body["codes"][0]["code"] = "P0301\n"
    with pytest.raises(RecordError, match="does not match") as info:
        validator("dtc").validate(body, "body")
    assert info.value.field == "body.codes[0].code"
    assert jsonschema.Draft202012Validator(load_schema("dtc")).is_valid(body)  # theirs: re.search


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(list(KINDS)),
    pick=st.integers(min_value=0),
    action=st.sampled_from(["replace", "delete", "add"]),
    new=json_values,
)
def test_mutated_bodies_get_the_same_verdict_from_both_validators(
    kind: str, pick: int, action: str, new: Any
) -> None:
    value = body_json(kind)
    paths = _paths(value)
    path = paths[pick % len(paths)]
    if path == ():
        value = new
    else:
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if action == "replace":
            parent[path[-1]] = new
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent["extra_" + str(path[-1])] = new
    # Where the two differ by design (test_a_pattern_must_match_the_whole_string).
    assume(not any(s.endswith("\n") for s in _strings(value)))
    assert _ours_accepts(kind, value) == _theirs_accepts(kind, value), json.dumps(value)


@pytest.mark.parametrize(
    ("schema", "value", "ok"),
    [
        ({"enum": [1, 2]}, True, False), ({"enum": [1, 2]}, 1.0, True),
        ({"const": 0}, False, False), ({"const": False}, 0, False), ({"const": False}, False, True),
        ({"enum": [[1]]}, [True], False), ({"const": {"a": 1}}, {"a": 1}, True),
    ],
)  # fmt: skip
def test_enum_and_const_compare_as_json_not_as_python(schema: Any, value: Any, ok: bool) -> None:
    assert _theirs_valid(schema, value) == ok
    try:
        Validator(schema).validate(value)
    except RecordError:
        assert not ok
    else:
        assert ok


def _theirs_valid(schema: Any, value: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))
