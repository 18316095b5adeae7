"""The driver ↔ vehicle binding: the statement the card signs and the session record bodies.

These frozen dataclasses give, through ``to_json()``, exactly the ``session.start`` and
``session.end`` bodies of the contract (DESIGN.md, "Record bodies shared between helpers").
The card signs SHA-256 of the RFC 8785 canonical JSON of the statement (RSA PKCS#1 v1.5).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from msp_protocol.canonical import canonical_json
from msp_protocol.jws import b64url
from msp_protocol.records import format_ts

from .errors import IdentityError

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


def iso_utc(at: datetime) -> str:
    """``2026-11-26T10:15:30.123Z``: the wire form of an aware datetime, as records carry times."""
    return format_ts(at.timestamp())


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent the driver gives with the card: what goes to whom, until when."""

    recipient: str
    categories: tuple[str, ...]
    until: str  # ISO 8601 UTC

    def to_json(self) -> dict[str, JsonValue]:
        """The contract's consent object."""
        return {"recipient": self.recipient, "categories": list(self.categories),
                "until": self.until}


@dataclass(frozen=True, slots=True)
class LicenceClaim:
    """The licence facts the statement carries: expiry and categories, nothing else."""

    expiry: date
    categories: tuple[str, ...]

    def to_json(self) -> dict[str, JsonValue]:
        """``{"expiry": "YYYY-MM-DD", "categories": [...]}``."""
        return {"expiry": self.expiry.isoformat(), "categories": list(self.categories)}


@dataclass(frozen=True, slots=True)
class BindingStatement:
    """What the card signs: this person (by card key) drives this vehicle from now on."""

    session: str
    vin: str
    device: str
    started_at: str
    nonce: str
    vehicle_class: str
    licence: LicenceClaim
    consents: tuple[Consent, ...]

    def to_json(self) -> dict[str, JsonValue]:
        """The statement object of ``session.start``."""
        return {
            "session": self.session, "vin": self.vin, "device": self.device,
            "started_at": self.started_at, "nonce": self.nonce,
            "vehicle_class": self.vehicle_class, "licence": self.licence.to_json(),
            "consents": [c.to_json() for c in self.consents],
        }

    def canonical(self) -> bytes:
        """The RFC 8785 bytes the card signs (via their SHA-256)."""
        return canonical_json(self.to_json())


@dataclass(frozen=True, slots=True)
class SessionStartBody:
    """The ``session.start`` body; ``card_certificate`` is None once the registry has it."""

    statement: BindingStatement
    card_signature: bytes
    card_certificate: bytes | None
    card_certificate_sha256: bytes

    def to_json(self) -> dict[str, JsonValue]:
        """The contract's ``session.start`` body."""
        cert = self.card_certificate
        return {
            "statement": self.statement.to_json(),
            "card_signature": base64.b64encode(self.card_signature).decode("ascii"),
            "card_certificate": None if cert is None else base64.b64encode(cert).decode("ascii"),
            "card_certificate_sha256": b64url(self.card_certificate_sha256),
        }


class EndReason(Enum):
    """Why a driver session ended."""

    CARD_REMOVED = "card_removed"
    IGNITION_OFF = "ignition_off"
    TIMEOUT = "timeout"
    LOGOUT = "logout"
    AGENT_STOP = "agent_stop"


@dataclass(frozen=True, slots=True)
class SessionEndBody:
    """The ``session.end`` body. Trip totals are added by the stage that owns them."""

    session: str
    reason: EndReason
    started_at: str
    ended_at: str
    duration_s: float

    def to_json(self) -> dict[str, JsonValue]:
        """``{"session", "reason", "started_at", "ended_at", "duration_s"}``."""
        return {"session": self.session, "reason": self.reason.value,
                "started_at": self.started_at, "ended_at": self.ended_at,
                "duration_s": self.duration_s}


def verify_binding(body: SessionStartBody, certificate_der: bytes) -> None:
    """Raise IdentityError unless ``card_signature`` is the certificate key's RSA PKCS#1 v1.5
    SHA-256 signature over the canonical statement and the fingerprint matches."""
    if hashlib.sha256(certificate_der).digest() != body.card_certificate_sha256:
        raise IdentityError("card_certificate_sha256 does not match the certificate")
    public_key = x509.load_der_x509_certificate(certificate_der).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise IdentityError("the card certificate does not hold an RSA key")
    try:
        public_key.verify(body.card_signature, body.statement.canonical(), padding.PKCS1v15(),
                          hashes.SHA256())
    except InvalidSignature as exc:
        raise IdentityError("the card's signature over the binding statement is invalid") from exc

