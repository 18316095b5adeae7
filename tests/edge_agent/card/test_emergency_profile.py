"""The emergency profile at the gateway: a bad file is named with its field; a good one is
sealed to the responder only (HPKE: only its key opens it, bound to its name) and the
statement names the ciphertext."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from edge_agent.card.emergency_profile import load_profile, profile_body, seal
from edge_agent.errors import ConfigError
from msp_protocol.jws import b64url
from msp_protocol.sealed import SealError, open_profile

GOOD = {"blood_type": "O+", "allergies": ["latex"], "conditions": [], "medication": [],
        "emergency_contact": "Suzuki Jiro 03-0000-0000"}


@pytest.mark.parametrize(("text", "words"), [
    ("{", "cannot read the emergency profile"),
    ("[]", "expected a JSON object"),
    ('{"blood": "O+"}', "unknown field(s) blood"),
    ('{"blood_type": 1}', "blood_type: expected text"),
    ('{"allergies": "latex"}', "allergies: expected a list of text"),
    ('{"allergies": []}', "an empty profile"),
])
def test_a_bad_profile_is_named(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert str(path) in str(caught.value) and words in str(caught.value)


def test_sealed_to_the_responder_only(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(GOOD))
    key = x25519.X25519PrivateKey.generate()
    public = b64url(key.public_key().public_bytes_raw())
    item = seal(load_profile(path), "amb", public, device="gw-1", vin="JTDKB20U793100001",
                now=datetime(2026, 11, 18, tzinfo=UTC), nonce="bm9uY2Utb2YtcHJvZmlsZQ")
    assert item.statement.sealed_sha256 == b64url(hashlib.sha256(item.sealed.encode()).digest())
    assert b"latex" not in item.sealed.encode()
    assert json.loads(open_profile(item.sealed, "amb", key)) == GOOD
    with pytest.raises(SealError):
        open_profile(item.sealed, "other-responder", key)  # bound to its responder's name
    with pytest.raises(SealError):
        open_profile(item.sealed, "amb", x25519.X25519PrivateKey.generate())
    body = profile_body(item, "c2ln", "q1Vx8m0b9kYQm4l3ZpJkE2a6wX0cR7tYbq2hM5nG0aE")
    assert body.statement.responder == "amb"
    with pytest.raises(ConfigError, match="responder 'amb'"):
        seal(GOOD, "amb", "not-a-key", device="gw-1", vin="JTDKB20U793100001",
             now=datetime(2026, 11, 18, tzinfo=UTC), nonce="bm9uY2Utb2YtcHJvZmlsZQ")
