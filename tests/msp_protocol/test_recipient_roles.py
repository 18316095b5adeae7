"""The role table of DESIGN.md (Consent and recipients), as ``msp_protocol.roles`` fixes it."""

from __future__ import annotations

import pytest

from msp_protocol import roles
from msp_protocol.errors import ProtocolError


def test_the_table_is_the_design_s() -> None:
    assert {r: sorted(c) for r, c in roles.ALLOWED.items()} == {
        "fleet": ["driving", "location", "maintenance", "score"],
        "insurer": ["driving", "score"],
        "guardian": ["alerts"],
        "responder": ["emergency"],
        "public": ["public"],
    }
    assert "operator" not in roles.ALLOWED
    assert roles.refused_categories("operator", ["driving"]) == ["driving"]


@pytest.mark.parametrize(("role", "categories", "refused"), [
    ("insurer", ["score", "location"], ["location"]),
    ("guardian", ["alerts", "driving"], ["driving"]),
    ("responder", ["emergency"], []),
    ("fleet", ["emergency", "alerts"], ["alerts", "emergency"]),
])
def test_refused_categories(role: str, categories: list[str], refused: list[str]) -> None:
    assert roles.refused_categories(role, categories) == refused


def test_check_names_what_the_role_may_have() -> None:
    with pytest.raises(ProtocolError, match=r"'tokio' \(insurer\) may not be given location "
                                            r"\(may: driving, score\)"):
        roles.check_categories("insurer", ["score", "location"], "tokio")
    assert roles.role_topic("guardian", "family", "alert") == "msp/v1/guardian/family/alert"
    with pytest.raises(ProtocolError):
        roles.role_topic("guardian", "a/b", "alert")
    with pytest.raises(ProtocolError):
        roles.role_topic("operator", "x", "alert")
