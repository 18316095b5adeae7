"""A test issuer standing in for J-LIS: a clearly named test CA, user-authentication
certificates and CRLs, made with ``cryptography`` for virtual cards and tests.

Nothing here is trusted by default: the agent trusts only anchors it is configured with.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

TEST_CA_NAME = "MSP TEST JPKI CA - NOT J-LIS"
RSA_BITS = 2048


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key, the size of the card's user-authentication key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


@dataclass(frozen=True, slots=True)
class TestIssuer:
    """A test CA: its key and self-signed certificate."""

    __test__ = False  # not a pytest test class, despite the name

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = TEST_CA_NAME, *, not_before: datetime | None = None,
               days: int = 3650, issuer: TestIssuer | None = None) -> TestIssuer:
        """A new CA; self-signed, or an intermediate signed by ``issuer``."""
        key = new_rsa_key()
        start = not_before or datetime.now(UTC) - timedelta(days=1)
        subject = _name(name, "MSP test issuer")
        signer_key = issuer.key if issuer else key
        signer_name = issuer.certificate.subject if issuer else subject
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(signer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(signer_key, hashes.SHA256())
        )
        return cls(key, certificate)

    def issue_auth_certificate(
        self, public_key: rsa.RSAPublicKey, label: str = "MSP test card", *,
        not_before: datetime | None = None, not_after: datetime | None = None,
        digital_signature: bool = True,
    ) -> x509.Certificate:
        """A user-authentication certificate like JPKI's: no personal attributes in it,
        ``label`` only names the test card; valid five years unless told otherwise."""
        start = not_before or datetime.now(UTC) - timedelta(days=1)
        end = not_after or start + timedelta(days=5 * 365)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(label, "MSP test card"))
            .issuer_name(self.certificate.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=digital_signature), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )

    def crl(
        self, revoked_serials: list[int], *, next_update_days: int = 1
    ) -> x509.CertificateRevocationList:
        """A CRL of this CA listing ``revoked_serials``, issued now."""
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - timedelta(minutes=1))
            .next_update(now + timedelta(days=next_update_days))
        )
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(now - timedelta(minutes=1)).build()
            )
        return builder.sign(self.key, hashes.SHA256())

    def save(self, cert_path: Path, key_path: Path) -> None:
        """Write the certificate (PEM) and the key (PEM, mode 0600)."""
        cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        write_private(key_path, self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> TestIssuer:
        """Read a CA written by ``save``."""
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{key_path}: not an RSA private key")
        return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file readable by its owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
