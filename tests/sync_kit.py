"""Test kit for the uplink and registry: devices with real keys, signed record chains, a card
issuer with RSA card certificates, and an enrolled registry. Real crypto throughout."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from cloud_sync.cards import TrustAnchors
from cloud_sync.pki import DeviceCa, cert_pem, jws_alg, public_key_pem
from cloud_sync.store import Device
from msp_protocol import bodies
from msp_protocol.canonical import canonical_json
from msp_protocol.codec import to_json
from msp_protocol.jws import Signer, b64url, record_hash
from msp_protocol.records import Record, format_ts

T0 = 1_795_000_000.0  # 2026-11-18, inside every test certificate's validity


def csr_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, device: str) -> bytes:
    """A CSR for a device key, as a gateway makes it."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM)


@dataclass
class Gateway:
    """One gateway's key and chain state; ``sign`` makes the next record of its chain."""

    device: str
    vin: str
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = field(
        default_factory=ed25519.Ed25519PrivateKey.generate
    )
    seq: int = 0
    prev: str | None = None

    @property
    def signer(self) -> Signer:
        return Signer(self.key, self.device)

    def record(self, body: bodies.Body, kind: str, session: str | None = None) -> Record:
        return Record(kind, self.device, self.vin, self.seq + 1, self.prev,
                      format_ts(T0 + self.seq), session, body)  # fmt: skip

    def sign(self, body: bodies.Body, kind: str, session: str | None = None) -> str:
        token = self.signer.sign_record(self.record(body, kind, session))
        self.seq += 1
        self.prev = record_hash(token)
        return token

    def device_row(self, ca: DeviceCa, fleet: str = "acme") -> Device:
        cert = ca.issue_device(self.device, csr_pem(self.key, self.device))
        public = self.key.public_key()
        return Device(self.device, self.vin, fleet, public_key_pem(public), jws_alg(public),
                      cert_pem(cert).decode(), "2026-11-01T00:00:00.000Z")  # fmt: skip


def trip(distance_km: float = 12.0, points: float = 5.0, day: int = 0) -> bodies.Trip:
    start = T0 + day * 86400
    return bodies.Trip(format_ts(start), format_ts(start + 900), distance_km, None, 900.0, 80.0,
                       None, None, 30.0, 0.0, {"harsh_braking": 1}, points, 80.0)  # fmt: skip


def event(kind: str = "harsh_braking") -> bodies.Event:
    return bodies.Event(kind, format_ts(T0 + 60), 0.8, -4.1, 42.0, "minor",
                        bodies.Location(35.68, 139.76))  # fmt: skip


def session_end(reason: str = "ignition_off") -> bodies.SessionEnd:
    return bodies.SessionEnd(reason, format_ts(T0 + 1000), bodies.SessionTotals(1, 12.0, 900, 1))


class CardIssuer:
    """A stand-in for J-LIS: an RSA root that issues RSA-2048 card (user-authentication) certs."""

    def __init__(self, directory: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test JPKI auth CA")])
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2035, 1, 1, tzinfo=dt.UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "test-jpki.pem").write_bytes(cert_pem(self.cert))
        self.directory = directory

    def anchors(self) -> TrustAnchors:
        return TrustAnchors.load(self.directory)

    def revoke(self, *cards: Card, key: rsa.RSAPrivateKey | None = None) -> None:
        """Publish a CRL listing ``cards`` (signed by ``key`` instead, to forge one)."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
            .last_update(now).next_update(now + dt.timedelta(days=1))
        )  # fmt: skip
        for card in cards:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(card.cert.serial_number)
                .revocation_date(now).build()
            )  # fmt: skip
        crl = builder.sign(key or self.key, hashes.SHA256())
        (self.directory / "test-jpki.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))

    def card(self, not_after: dt.datetime | None = None) -> Card:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
            .not_valid_after(not_after or dt.datetime(2030, 6, 1, tzinfo=dt.UTC))
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        return Card(key, cert)


@dataclass
class Card:
    """A driver's card: its RSA key and user-authentication certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def session_start(self, gw: Gateway, session: str, send_cert: bool = True,
                      **changes: object) -> bodies.SessionStart:  # fmt: skip
        statement = bodies.Statement(
            session, gw.vin, gw.device, format_ts(T0),
            b64url(hashlib.sha256(session.encode()).digest()),
            "car", bodies.Licence("2030-01-01", ("普通",)),
            (bodies.Consent("acme", ("driving",), "2027-11-26T00:00:00.000Z"),),
        )
        statement = replace(statement, **changes)  # type: ignore[arg-type]
        signature = self.key.sign(canonical_json(to_json(statement)), padding.PKCS1v15(),
                                  hashes.SHA256())  # fmt: skip
        return bodies.SessionStart(
            statement,
            base64.b64encode(signature).decode(),
            base64.b64encode(self.der).decode() if send_cert else None,
            b64url(hashlib.sha256(self.der).digest()),
        )
