"""Offline certificate checks: chain to a configured trust anchor, validity, key usage, CRL.

Only configured anchors are trusted. The CA certificate the card offers (EF 000B) is used as
an untrusted intermediate, never as an anchor. Revocation is checked against configured CRLs
only: offline, J-LIS revocation data reaches a vehicle only through a platform operator.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import ConfigError
from .errors import CertificateProblem, CertificateRejectedError

log = logging.getLogger(__name__)

MAX_CHAIN_DEPTH = 4


def _load_pem_or_der_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read trust anchor: {exc}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM or DER certificate: {exc}") from exc


def _load_crl(path: Path) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read CRL: {exc}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM or DER CRL: {exc}") from exc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_dates(cert: x509.Certificate, at: datetime, role: str) -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateRejectedError(
            CertificateProblem.NOT_YET_VALID,
            f"{role} is not valid before {cert.not_valid_before_utc.isoformat()}",
        )
    if at > cert.not_valid_after_utc:
        raise CertificateRejectedError(
            CertificateProblem.EXPIRED, f"{role} expired {cert.not_valid_after_utc.isoformat()}"
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True, slots=True)
class TrustStore:
    """The anchors the agent trusts and the CRLs it knows (both may be empty tuples)."""

    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    @classmethod
    def load(cls, anchor_paths: Iterable[Path], crl_paths: Iterable[Path] = ()) -> TrustStore:
        """Read anchors (PEM bundles or DER) and CRLs; raises ConfigError naming the file."""
        anchors = [cert for path in anchor_paths for cert in _load_pem_or_der_certs(path)]
        return cls(tuple(anchors), tuple(_load_crl(path) for path in crl_paths))

    def check(self, leaf_der: bytes, intermediates_der: Iterable[bytes], at: datetime
              ) -> x509.Certificate:
        """Return the card's certificate if it passes every check at ``at``; otherwise raise
        CertificateRejectedError with the first problem found (dates and key usage of the
        leaf first, then the chain, then revocation)."""
        try:
            leaf = x509.load_der_x509_certificate(leaf_der)
            intermediates = [x509.load_der_x509_certificate(d) for d in intermediates_der]
        except ValueError as exc:
            raise CertificateRejectedError(
                CertificateProblem.MALFORMED, f"the card's certificate does not parse: {exc}"
            ) from exc
        _check_dates(leaf, at, "the card's certificate")
        self._check_key_usage(leaf)
        path = self._build_path(leaf, intermediates, at)
        self._check_revocation(path, at)
        log.info("card certificate %s trusted via %s", leaf.serial_number,
                 path[-1].subject.rfc4514_string())
        return leaf

    @staticmethod
    def _check_key_usage(leaf: x509.Certificate) -> None:
        try:
            usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            raise CertificateRejectedError(
                CertificateProblem.KEY_USAGE, "the card's certificate has no key usage extension"
            ) from None
        if not usage.digital_signature or _is_ca(leaf):
            raise CertificateRejectedError(
                CertificateProblem.KEY_USAGE,
                "the card's certificate is not for digital signatures (user authentication)",
            )
        if not isinstance(leaf.public_key(), rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CertificateRejectedError(
                CertificateProblem.KEY_USAGE, "the card's certificate has an unsupported key type"
            )

    def _build_path(self, leaf: x509.Certificate, intermediates: list[x509.Certificate],
                    at: datetime) -> list[x509.Certificate]:
        """leaf → … → anchor, using card-supplied CAs only as stepping stones."""
        path = [leaf]
        current = leaf
        for _ in range(MAX_CHAIN_DEPTH):
            for anchor in self.anchors:
                if _issued_by(current, anchor):
                    _check_dates(anchor, at, f"trust anchor {anchor.subject.rfc4514_string()}")
                    path.append(anchor)
                    return path
            step = next((c for c in intermediates
                         if c not in path and _is_ca(c) and _issued_by(current, c)), None)
            if step is None:
                break
            _check_dates(step, at, f"intermediate CA {step.subject.rfc4514_string()}")
            path.append(step)
            current = step
        raise CertificateRejectedError(
            CertificateProblem.UNTRUSTED,
            f"the card's certificate (issuer {leaf.issuer.rfc4514_string()}) does not chain "
            "to a configured trust anchor",
        )

    def _check_revocation(self, path: list[x509.Certificate], at: datetime) -> None:
        for cert, issuer in pairwise(path):
            for crl in self.crls:
                if crl.issuer != issuer.subject:
                    continue
                public_key = issuer.public_key()
                if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or \
                        not crl.is_signature_valid(public_key):
                    log.warning("CRL of %s has a bad signature; ignored",
                                crl.issuer.rfc4514_string())
                    continue
                if crl.next_update_utc is not None and crl.next_update_utc < at:
                    log.warning("CRL of %s is stale (next update was %s); used anyway",
                                crl.issuer.rfc4514_string(), crl.next_update_utc.isoformat())
                if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                    raise CertificateRejectedError(
                        CertificateProblem.REVOKED,
                        f"certificate serial {cert.serial_number:x} is revoked by the CRL of "
                        f"{issuer.subject.rfc4514_string()}",
                    )
