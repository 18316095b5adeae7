"""The person's emergency profile: read from a JSON file, sealed to one responder, bound by
the card (``msp-agent card emergency-profile set FILE --responder NAME``).

The profile (``{"blood_type", "allergies", "conditions", "medication",
"emergency_contact"}``) is checked here, sealed with HPKE (RFC 9180 base mode, X25519,
``msp_protocol.sealed.seal_profile``) to the responder's public key from the registry's
recipients list, and never leaves the gateway in the clear: the registry keeps only the
ciphertext. The card signs a statement naming the responder and the SHA-256 of the
ciphertext, which goes as a ``profile`` record (sent ahead of the backlog).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from msp_protocol import bodies
from msp_protocol.jws import b64url
from msp_protocol.records import checked
from msp_protocol.sealed import SealError, seal_profile

from ..errors import ConfigError

#: The fields a profile may have: lists of text, or text.
LIST_FIELDS: Final = ("allergies", "conditions", "medication")
TEXT_FIELDS: Final = ("blood_type", "emergency_contact")
#: The largest profile accepted (bytes of its JSON).
MAX_PROFILE_BYTES: Final = 8192


@dataclass(frozen=True, slots=True)
class SealedProfile:
    """A profile sealed to one responder and the statement the card is to sign."""

    statement: bodies.ProfileStatement
    sealed: str


def load_profile(path: Path) -> dict[str, Any]:
    """The profile in ``path``; ``ConfigError`` naming the file and the field at fault."""
    try:
        raw = path.read_bytes()
        value = json.loads(raw)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the emergency profile: {exc}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise ConfigError(f"{path}: {len(raw)} bytes, at most {MAX_PROFILE_BYTES}")
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object with "
                          f"{', '.join(TEXT_FIELDS + LIST_FIELDS)}")
    unknown = sorted(set(value) - set(LIST_FIELDS) - set(TEXT_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)} (known: "
                          f"{', '.join(TEXT_FIELDS + LIST_FIELDS)})")  # fmt: skip
    for name in TEXT_FIELDS:
        if name in value and not isinstance(value[name], str):
            raise ConfigError(f"{path}: {name}: expected text, got {value[name]!r}")
    for name in LIST_FIELDS:
        item = value.get(name, [])
        if not isinstance(item, list) or not all(isinstance(i, str) for i in item):
            raise ConfigError(f"{path}: {name}: expected a list of text, got {item!r}")
    if not value.get("blood_type") and not any(value.get(n) for n in LIST_FIELDS):
        raise ConfigError(f"{path}: an empty profile (give at least blood_type or a list)")
    return value


def seal(profile: dict[str, Any], responder: str, public_key: str, *, device: str, vin: str,
         now: datetime, nonce: str) -> SealedProfile:  # fmt: skip
    """``profile`` sealed to ``responder`` and the statement binding it; ``ConfigError`` for a
    responder key that is not an X25519 key."""
    from ..identity.binding import iso_utc  # noqa: PLC0415 - keeps this module light

    text = json.dumps(profile, sort_keys=True, ensure_ascii=False).encode()
    try:
        sealed = seal_profile(text, responder, public_key)
    except SealError as exc:
        raise ConfigError(f"responder {responder!r}: {exc}") from None
    digest = b64url(hashlib.sha256(sealed.encode("ascii")).digest())
    statement = bodies.ProfileStatement(responder, device, vin, iso_utc(now), nonce, digest)
    return SealedProfile(statement, sealed)


def profile_body(item: SealedProfile, signature_b64: str,
                 certificate_sha256: str) -> bodies.CardProfile:  # fmt: skip
    """The ``profile`` record body, checked against its schema."""
    return checked(bodies.CardProfile(item.statement, item.sealed, signature_b64,
                                      certificate_sha256))  # fmt: skip
