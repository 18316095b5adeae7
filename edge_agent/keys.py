"""The gateway's device key: create it owner-only with a CSR for enrolment, and load it to sign.

The key is an unencrypted PKCS#8 PEM file, mode 0600 (systemd's ``LoadCredential=`` or a
``StateDirectory=`` with ``UMask=0077`` keep it so). Loading refuses a key file that group or
others may read, as ssh does. ``ES256`` is for keys that may later move into a TPM, which
cannot hold Ed25519.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PrivateKey, Signer
from msp_protocol.topics import check_id

from .errors import AgentError

log = logging.getLogger(__name__)


class DeviceKeyError(AgentError):
    """A device key that cannot be created or used; the message names the file."""


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A created device key: where it and its CSR are, and the public key as PEM."""

    device: str
    alg: str
    key_path: Path
    csr_path: Path
    public_pem: str


def csr_path_for(key_path: Path) -> Path:
    """Return where the CSR of a key file goes: beside it, suffix ``.csr``."""
    return key_path.with_suffix(".csr")


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` created with ``mode`` (never wider), atomically."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists: never clobber a key by accident
    finally:
        tmp.unlink(missing_ok=True)


def init_device_key(
    key_path: Path, device: str, *, alg: str = "EdDSA", force: bool = False
) -> DeviceKey:
    """Create a device key (mode 0600) and its CSR (CN = device id) beside it.

    Refuses to overwrite an existing key unless ``force``. Raises ``DeviceKeyError``.
    """
    try:
        check_id(device, "device")
    except ProtocolError as exc:
        raise DeviceKeyError(f"--device: {exc}") from None
    if key_path.exists() and not force:
        raise DeviceKeyError(f"{key_path} exists; refusing to overwrite it without --force")
    key: PrivateKey
    if alg == "EdDSA":
        key = Ed25519PrivateKey.generate()
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise DeviceKeyError(f"--alg {alg!r}: expected EdDSA or ES256")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    from cryptography import x509  # noqa: PLC0415 - X.509 only to write the CSR
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
        .sign(key, None if alg == "EdDSA" else hashes.SHA256())
    )
    csr_path = csr_path_for(key_path)
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_new(key_path, pem, 0o600, force)
        _write_new(csr_path, csr.public_bytes(serialization.Encoding.PEM), 0o644, True)
    except FileExistsError:
        raise DeviceKeyError(f"{key_path} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise DeviceKeyError(f"cannot write {exc.filename or key_path}: {exc.strerror}") from None
    log.info("created %s key for %s at %s", alg, device, key_path)
    signer = Signer(key, device)
    return DeviceKey(device, alg, key_path, csr_path, signer.public_pem())


def load_signer(key_path: Path, device: str) -> Signer:
    """Return a signer for ``device`` from its key file; refuses a file group/others can read."""
    try:
        mode = key_path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise DeviceKeyError(
                f"{key_path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {key_path}"
            )
        return Signer.from_key_file(key_path, check_id(device, "device"))
    except OSError as exc:
        raise DeviceKeyError(f"cannot read key {key_path}: {exc.strerror}") from None
    except ProtocolError as exc:
        raise DeviceKeyError(f"{key_path}: {exc}") from None
