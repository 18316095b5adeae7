"""The registry's device CA: creates it, issues device and broker certificates from it.

Every gateway authenticates to the broker with a certificate this CA issued (CN = device id),
so the CA is dedicated to devices: mosquitto accepts any certificate any CA in its ``cafile``
issued. Private keys are written 0600 and never leave the directory they were made in.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import EnrolmentError, PkiError

log = logging.getLogger(__name__)

#: Device ids: what a topic level and a certificate CN can both carry without escaping.
#: New device ids: no ``.``, which NATS's MQTT listener refuses in a topic level (a device
#: id is one), so that a registry can move from mosquitto to a NATS cluster; the wire rule
#: (``msp_protocol.topics.check_id``) still reads records of older ids with a dot.
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Names the broker configuration reserves for itself; never issued to a device.
RESERVED_IDS = frozenset({"registry", "web"})  # broker users of the registry side
#: Certificate CN prefix of fleet operators; no device id starts with it.
FLEET_PREFIX = "fleet."

_CA_CERT = "device-ca.pem"
_CA_KEY = "device-ca.key"
#: The CA's certificate revocation list (PEM), in the CA directory and the broker's.
CRL_FILE = "device-ca.crl.pem"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600), replacing any old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def key_pem(key: PrivateKey) -> bytes:
    """The unencrypted PKCS#8 PEM of ``key`` (callers write it with :func:`write_private`)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """The PEM of ``cert``."""
    return cert.public_bytes(serialization.Encoding.PEM)


def jws_alg(key: PublicKey) -> str:
    """The JWS ``alg`` a device with this public key signs with (``EdDSA`` or ``ES256``)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise EnrolmentError(f"unsupported device key: EC curve {key.curve.name} (need P-256)")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(days: int) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """A certificate and the private key made for it (server and registry certificates)."""

    cert: x509.Certificate
    key: PrivateKey


class DeviceCa:
    """The device CA kept in one directory (``device-ca.pem`` and the 0600 ``device-ca.key``)."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: PrivateKey) -> None:
        self.directory = directory
        self.cert = cert
        self._key = key

    @classmethod
    def open(cls, directory: Path, *, create: bool = True, name: str = "MSP device CA") -> DeviceCa:
        """Load the CA in ``directory``; create it there (P-256, 10 years) if absent and allowed."""
        cert_file, key_file = directory / _CA_CERT, directory / _CA_KEY
        if cert_file.exists() and key_file.exists():
            try:
                cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
                key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise PkiError(f"{directory}: unreadable device CA: {exc}") from exc
            if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
                raise PkiError(f"{key_file}: unsupported CA key type {type(key).__name__}")
            return cls(directory, cert, key)
        if not create:
            raise PkiError(f"{directory}: no device CA ({_CA_CERT} and {_CA_KEY})")
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity(3650)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private(key_file, key_pem(key))
        cert_file.write_bytes(cert_pem(cert))
        log.info("created device CA in %s", directory)
        return cls(directory, cert, key)

    def _issue(
        self,
        subject: str,
        public_key: PublicKey,
        usage: x509.ObjectIdentifier,
        days: int,
        hosts: tuple[str, ...] = (),
    ) -> x509.Certificate:
        not_before, not_after = _validity(days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def issue_server(self, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> IssuedCert:
        """A broker server certificate with these host names / IP addresses as SANs."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(hosts[0], key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, 825, hosts)
        return IssuedCert(cert, key)

    def issue_client(self, common_name: str, days: int = 825) -> IssuedCert:
        """A client certificate with a fresh P-256 key (fleet operators, test clients)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(common_name, key.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH, days)
        return IssuedCert(cert, key)

    def crl_pem(self, revoked: Iterable[int]) -> bytes:
        """A CRL (PEM) signed by this CA listing the certificates with serial numbers
        ``revoked``; empty is valid too (mosquitto's ``crlfile`` needs one for the CA)."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(crl_next_update(self.cert))
        )
        for serial in sorted(set(revoked)):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def write_crl(self, revoked: Iterable[int]) -> Path:
        """Write :meth:`crl_pem` as ``device-ca.crl.pem`` into the CA directory; its path."""
        path = self.directory / CRL_FILE
        path.write_bytes(self.crl_pem(revoked))
        return path

    def issue_device(self, device: str, csr_pem: bytes, days: int = 825) -> x509.Certificate:
        """Issue the device certificate (CN = ``device``) for the key in ``csr_pem``.

        Raises :class:`EnrolmentError` for an invalid id, a CSR that is not PEM, whose
        self-signature fails, or whose key is neither Ed25519 nor P-256.
        """
        check_device_id(device)
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise EnrolmentError(f"{device}: CSR is not a PEM certificate request: {exc}") from exc
        try:
            signed_ok = csr.is_signature_valid
        except (InvalidSignature, UnsupportedAlgorithm) as exc:
            raise EnrolmentError(f"{device}: CSR signature cannot be checked: {exc}") from exc
        if not signed_ok:
            raise EnrolmentError(f"{device}: CSR self-signature does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise EnrolmentError(f"{device}: unsupported key {type(public_key).__name__}")
        jws_alg(public_key)
        return self._issue(device, public_key, ExtendedKeyUsageOID.CLIENT_AUTH, days)


def crl_next_update(ca: x509.Certificate) -> dt.datetime:
    """Until when a CRL of ``ca`` is valid: as long as the CA. OpenSSL refuses *every* client
    certificate once the CRL it was given has expired, and this CRL is handed to the broker by
    ``msp-registry``, not fetched, so there is nothing to gain from letting it lapse."""
    return ca.not_valid_after_utc


def check_device_id(device: str) -> None:
    """Raise :class:`EnrolmentError` unless ``device`` is a usable, unreserved device id."""
    if not DEVICE_ID.match(device) or device in RESERVED_IDS or device.startswith(FLEET_PREFIX):
        raise EnrolmentError(
            f"device id {device!r}: need 1-64 of A-Z a-z 0-9 _ - (not starting with _ -; no '.',"
            " which a NATS cluster cannot carry in a topic),"
            f" not {sorted(RESERVED_IDS)} nor starting with {FLEET_PREFIX!r}"
        )


def public_key_pem(key: PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM of ``key`` as text (how the store keeps device keys)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
