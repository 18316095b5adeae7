"""Verification of driver sessions: the card's signature over the binding statement, the card
certificate's chain to the configured trust anchors, its validity and its revocation (CRL).

A person is keyed by the card certificate's public key (a renewed certificate for the same
key is the same person); what the registry shows is a pseudonym derived from that key, never
the certificate's serial number or subject.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from msp_protocol.bodies import SessionStart
from msp_protocol.canonical import canonical_json
from msp_protocol.codec import to_json
from msp_protocol.jws import b64url
from msp_protocol.records import Record, parse_ts

from .errors import PkiError
from .store import CardIdentity

log = logging.getLogger(__name__)


class CardRejected(Exception):  # noqa: N818 - a verdict, counted by ``reason``
    """A ``session.start`` whose card evidence does not hold; ``reason`` is the counter name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def person_id(key_sha256: str) -> str:
    """The registry's pseudonym for the holder of a card key (stable across renewals)."""
    return "p-" + key_sha256[:20]


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    """Card issuers the registry accepts (test issuer in tests, J-LIS roots in service) and the
    CRLs it has from them."""

    roots: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    @classmethod
    def load(cls, directory: Path) -> TrustAnchors:
        """Load every ``*.pem``/``*.crt`` certificate and ``*.crl`` (PEM or DER) in a directory."""
        roots: list[x509.Certificate] = []
        crls: list[x509.CertificateRevocationList] = []
        for path in sorted(directory.iterdir()):
            data = path.read_bytes()
            try:
                if path.suffix in (".pem", ".crt"):
                    roots.extend(x509.load_pem_x509_certificates(data))
                elif path.suffix == ".crl":
                    pem = data.lstrip().startswith(b"-----")
                    crls.append(
                        x509.load_pem_x509_crl(data) if pem else x509.load_der_x509_crl(data)
                    )
            except ValueError as exc:
                raise PkiError(f"{path}: not a certificate or CRL: {exc}") from exc
        if not roots:
            raise PkiError(f"{directory}: no trust anchor certificates (*.pem, *.crt)")
        return cls(tuple(roots), tuple(crls))


def _certificate_der(body: SessionStart, known: bytes | None) -> bytes:
    if body.card_certificate is None:
        if known is None:
            raise CardRejected(
                "card_certificate_unknown",
                f"certificate {body.card_certificate_sha256} was never sent to this registry",
            )
        return known
    try:
        der = base64.b64decode(body.card_certificate, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CardRejected("card_certificate_invalid", f"not base64: {exc}") from None
    if b64url(hashlib.sha256(der).digest()) != body.card_certificate_sha256:
        raise CardRejected("card_certificate_invalid", "card_certificate_sha256 does not match")
    return der


def verify_session_start(
    record: Record, body: SessionStart, anchors: TrustAnchors, known_der: bytes | None
) -> CardIdentity:
    """Check a ``session.start`` record's card evidence; return who the card stands for.

    ``known_der`` is the certificate the store already has under
    ``body.card_certificate_sha256`` (for records that send only the hash). Raises
    :class:`CardRejected` with a reason for every failed check.
    """
    st = body.statement
    for name, inner, outer in (
        ("session", st.session, record.session),
        ("device", st.device, record.device),
        ("vin", st.vin, record.vin),
    ):
        if inner != outer:
            raise CardRejected("statement_mismatch", f"statement {name} {inner!r} != {outer!r}")
    der = _certificate_der(body, known_der)
    key = card_key(der)
    verify_card_signature(key, canonical_json(to_json(st)), body.card_signature)
    check_card_certificate(der, anchors, parse_ts(st.started_at))
    key_sha = key_sha256(key)
    return CardIdentity(person_id(key_sha), key_sha, body.card_certificate_sha256, der)


def card_key(der: bytes) -> rsa.RSAPublicKey:
    """The RSA key of a card certificate (DER); ``CardRejected`` if it is none."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CardRejected("card_certificate_invalid", f"not a DER certificate: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CardRejected("card_certificate_invalid", "card key is not RSA")
    return key


def key_sha256(key: rsa.RSAPublicKey) -> str:
    """The base64url SHA-256 of a card key's SubjectPublicKeyInfo: what a person is keyed by."""
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(spki).digest())


def verify_card_signature(key: rsa.RSAPublicKey, signed: bytes, signature_b64: str) -> None:
    """``CardRejected`` (``card_signature``) unless ``signature_b64`` is the card's RSA PKCS#1
    v1.5 SHA-256 signature over ``signed``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise CardRejected("card_signature", "card signature over the statement fails") from None


def check_card_certificate(der: bytes, anchors: TrustAnchors, when: datetime) -> None:
    """``CardRejected`` unless the card certificate was issued by a trust anchor, was valid
    at ``when`` and is on no CRL of its issuer."""
    cert = x509.load_der_x509_certificate(der)
    issuer = next((r for r in anchors.roots if r.subject == cert.issuer), None)
    if issuer is None:
        raise CardRejected("card_untrusted", f"issuer {cert.issuer.rfc4514_string()} unknown")
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise CardRejected("card_untrusted", "certificate not signed by its issuer") from None
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise CardRejected("card_expired", f"certificate not valid at {when.isoformat()}")
    for crl in anchors.crls:
        issuer_key = issuer.public_key()
        if not isinstance(issuer_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            continue
        if crl.issuer != cert.issuer or not crl.is_signature_valid(issuer_key):
            continue  # another issuer's list, or a forged one: it proves nothing
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise CardRejected("card_revoked", "certificate is on its issuer's CRL")
