"""The registry's device CA: what it issues, what it refuses, how it keeps its key."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud_sync.errors import EnrolmentError, PkiError
from cloud_sync.pki import DeviceCa, check_device_id
from tests.sync_kit import csr_pem


def _csr(key, name: str = "gw-1") -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("key", [ed25519.Ed25519PrivateKey.generate(),
                                 ec.generate_private_key(ec.SECP256R1())])  # fmt: skip
def test_device_certificate(tmp_path, key):
    ca = DeviceCa.open(tmp_path / "ca")
    cert = ca.issue_device("gw-1", csr_pem(key, "gw-1"))
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-1"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.public_key() == key.public_key()
    assert stat.S_IMODE((tmp_path / "ca" / "device-ca.key").stat().st_mode) == 0o600
    assert DeviceCa.open(tmp_path / "ca", create=False).cert == ca.cert  # reopened, not remade


@pytest.mark.parametrize(("key", "message"), [
    (rsa.generate_private_key(public_exponent=65537, key_size=2048), "unsupported key"),
    (ec.generate_private_key(ec.SECP384R1()), "need P-256"),
])  # fmt: skip
def test_unusable_device_keys_are_refused(tmp_path, key, message):
    with pytest.raises(EnrolmentError, match=message):
        DeviceCa.open(tmp_path / "ca").issue_device("gw-1", _csr(key))


def test_missing_or_broken_ca(tmp_path):
    with pytest.raises(PkiError, match="no device CA"):
        DeviceCa.open(tmp_path / "none", create=False)
    DeviceCa.open(tmp_path / "ca")
    (tmp_path / "ca" / "device-ca.pem").write_text("garbage")
    with pytest.raises(PkiError, match="unreadable device CA"):
        DeviceCa.open(tmp_path / "ca")


@pytest.mark.parametrize("bad", ["gw.1", ".gw", "-gw", "gw 1", "gw/1", "registry", "web",
                                 "fleet.acme", "x" * 65])  # fmt: skip
def test_device_ids_every_broker_can_carry(bad: str) -> None:
    with pytest.raises(EnrolmentError, match="device id"):
        check_device_id(bad)
    for good in ("gw-1", "GW_0001", "a", "x" * 64):
        check_device_id(good)
