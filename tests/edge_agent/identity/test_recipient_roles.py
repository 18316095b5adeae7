"""The gateway refuses, before the card signs, a consent its recipient's role may not be given
(``msp_protocol.roles``), naming what the role may have; the registry's list carries roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.identity.recipients import KnownRecipients, check_known


def listing(tmp_path: Path) -> Path:
    path = tmp_path / "recipients.json"
    path.write_text(json.dumps({"recipients": [
        {"id": "acme", "role": "fleet"}, {"id": "tokio", "role": "insurer"},
        {"id": "sato", "role": "guardian"},
        {"id": "amb", "role": "responder", "public_key": "x" * 43}]}))  # fmt: skip
    return path


@pytest.mark.parametrize(("recipient", "categories", "words"), [
    ("tokio", ["score", "location"], "'tokio' (insurer) may not be given location "
                                     "(may: driving, score)"),
    ("sato", ["driving"], "'sato' (guardian) may not be given driving (may: alerts)"),
    ("amb", ["emergency", "alerts"], "'amb' (responder) may not be given alerts"),
    ("acme", ["emergency"], "'acme' (fleet) may not be given emergency"),
])
def test_a_consent_outside_the_role_is_refused(tmp_path: Path, recipient: str,
                                               categories: list[str], words: str) -> None:
    known = KnownRecipients.load(listing(tmp_path))
    with pytest.raises(ConfigError) as caught:
        known.check(recipient, categories)
    assert words in str(caught.value)
    with pytest.raises(ConfigError, match="may not be given"):
        check_known(recipient, listing(tmp_path), categories=categories)


def test_what_the_role_may_have_passes(tmp_path: Path) -> None:
    known = KnownRecipients.load(listing(tmp_path))
    assert known.check("tokio", ["score", "driving"]).role == "insurer"
    assert known.check("sato", ["alerts"]).role == "guardian"
    assert known.check("amb", ["emergency"]).role == "responder"
    assert known.check("acme", ["driving", "location"]).role == "fleet"
    assert known.check("sato").role == "guardian"  # a revocation names no categories
