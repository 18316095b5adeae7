"""Device keys: created owner-only with a CSR, never clobbered, refused when readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from edge_agent.keys import DeviceKeyError, init_device_key, load_signer
from msp_protocol.jws import verify


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_init_writes_an_owner_only_key_and_a_csr(tmp_path: Path, alg: str) -> None:
    key = init_device_key(tmp_path / "keys" / "device.key", "gw-0042", alg=alg)
    assert stat.S_IMODE(key.key_path.stat().st_mode) == 0o600
    csr = x509.load_pem_x509_csr(key.csr_path.read_bytes())
    assert key.csr_path == tmp_path / "keys" / "device.csr"
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-0042"
    signer = load_signer(key.key_path, "gw-0042")
    assert signer.alg == alg and signer.public_pem() == key.public_pem
    assert verify(signer.sign(b"{}"), signer.public_key()).kid == "gw-0042"
    assert isinstance(csr.public_key(), Ed25519PublicKey) == (alg == "EdDSA")


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    first = init_device_key(path, "gw-1")
    with pytest.raises(DeviceKeyError, match="refusing to overwrite"):
        init_device_key(path, "gw-1")
    assert load_signer(path, "gw-1").public_pem() == first.public_pem
    second = init_device_key(path, "gw-1", force=True)
    assert second.public_pem != first.public_pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_device_ids_and_algorithms_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DeviceKeyError, match="--device"):
        init_device_key(tmp_path / "k", "gw/1")
    with pytest.raises(DeviceKeyError, match="expected EdDSA or ES256"):
        init_device_key(tmp_path / "k", "gw-1", alg="RS256")
    assert not (tmp_path / "k").exists()


def test_load_refuses_keys_others_can_read_and_non_keys(tmp_path: Path) -> None:
    key = init_device_key(tmp_path / "device.key", "gw-1")
    key.key_path.chmod(0o644)
    with pytest.raises(DeviceKeyError, match=r"mode 0644\); run: chmod 600"):
        load_signer(key.key_path, "gw-1")
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(DeviceKeyError, match="not a usable PEM private key"):
        load_signer(junk, "gw-1")
    with pytest.raises(DeviceKeyError, match="cannot read key"):
        load_signer(tmp_path / "missing.key", "gw-1")
