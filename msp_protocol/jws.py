"""JWS compact serialisation (RFC 7515) of records: Ed25519 (RFC 8037) and ES256.

Only these two algorithms exist here; the verifier takes the algorithm from the *key*, not from
the token, and refuses a token whose header claims another (no ``none``, no confusion). An
Ed25519 key signs as ``EdDSA`` and verifies ``EdDSA`` or its fully-specified name ``Ed25519``
(RFC 9864). The header is ``{"alg", "kid"}`` with ``kid`` = device id; nothing else is accepted
in it, and it is parsed as strictly as a payload (no duplicate keys, bounded nesting).
Splitting and verifying are total: any string gives a ``Jws`` or a ``SignatureError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .canonical import canonical_json
from .errors import SignatureError
from .records import MAX_RECORD_BYTES, Record, parse_record
from .strictjson import loads_strict

#: Longest JWS accepted: the base64url of a ``MAX_RECORD_BYTES`` payload, header and signature.
MAX_TOKEN_CHARS: Final = MAX_RECORD_BYTES * 4 // 3 + 1024

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
#: Looks up a device's public key by ``kid``; raises ``SignatureError`` for an unknown device.
KeyResolver = Callable[[str], PublicKey]

#: The ``alg`` values a token may carry; ``ACCEPTED_ALGORITHMS[algorithm_for(key)]`` those a
#: given key verifies.
ALGORITHMS: Final = ("EdDSA", "Ed25519", "ES256")
ACCEPTED_ALGORITHMS: Final[dict[str, tuple[str, ...]]] = {
    "EdDSA": ("EdDSA", "Ed25519"),
    "ES256": ("ES256",),
}
_HEADER_FIELDS: Final = frozenset({"alg", "kid"})
#: A kid is a device id (envelope.json ``device``): one MQTT topic level.
_KID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """Return unpadded base64url (RFC 7515 §2)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Decode unpadded base64url strictly; raises ``SignatureError`` naming ``what``."""
    if "=" in text or not text.isascii():
        raise SignatureError("not unpadded base64url", what)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError("not base64url", what) from None
    if b64url(data) != text:
        raise SignatureError("not canonical base64url", what)
    return data


def record_hash(token: str) -> str:
    """Return the chain hash of a record: base64url SHA-256 of its JWS string (ASCII)."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """Return the JWS ``alg`` a key signs with (``EdDSA`` or ``ES256``); refuses other key types
    and curves. ``ACCEPTED_ALGORITHMS`` of it lists what the key verifies."""
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ES256"
        raise SignatureError(f"EC curve {key.curve.name} is not allowed, only P-256", "alg")
    raise SignatureError(f"{type(key).__name__} keys are not allowed", "alg")


class Signer:
    """Signs payloads as JWS compact with one device key; ``kid`` is the device id."""

    def __init__(self, key: PrivateKey, kid: str) -> None:
        self.alg = algorithm_for(key)
        self.kid = kid
        self._key = key
        header = canonical_json({"alg": self.alg, "kid": kid})
        self._header_b64 = b64url(header)

    @classmethod
    def from_pem(cls, pem: bytes, kid: str) -> Signer:
        """Build a signer from an unencrypted PKCS#8 PEM private key (Ed25519 or P-256)."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SignatureError(f"not a usable PEM private key: {exc}", "key") from None
        if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise SignatureError(f"{type(key).__name__} keys are not allowed", "key")
        return cls(key, kid)

    @classmethod
    def from_key_file(cls, path: Path, kid: str) -> Signer:
        """Build a signer from a PEM key file; see ``from_pem``."""
        return cls.from_pem(path.read_bytes(), kid)

    def public_key(self) -> PublicKey:
        """Return the public half of the signing key."""
        return self._key.public_key()

    def public_pem(self) -> str:
        """Return the public key as PEM (SubjectPublicKeyInfo)."""
        return public_pem(self._key.public_key())

    def sign(self, payload: bytes) -> str:
        """Return the JWS compact serialisation of ``payload``."""
        signing_input = (self._header_b64 + "." + b64url(payload)).encode("ascii")
        if isinstance(self._key, Ed25519PrivateKey):
            signature = self._key.sign(signing_input)
        else:
            der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(der)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"

    def sign_record(self, record: Record, *, body_checked: bool = False) -> str:
        """Return the JWS of a record; refuses a record of another device than ``kid``, and
        an invalid record (``RecordError``; with ``body_checked``, the body is taken as checked
        when it was built: see ``Record.canonical``)."""
        if record.device != self.kid:
            raise SignatureError(f"record of {record.device!r}, key of {self.kid!r}", "device")
        return self.sign(record.canonical(body_checked=body_checked))


@dataclass(frozen=True, slots=True)
class Jws:
    """A JWS split into its parts (signature *not yet* verified by ``split``)."""

    alg: str
    kid: str
    payload: bytes
    signing_input: bytes
    signature: bytes


#: Headers already read (``alg``, ``kid`` by the header's base64url): a device sends the same
#: header on every record, so it is decoded and checked once. Bounded; cleared when full.
_HEADERS: dict[str, tuple[str, str]] = {}
_HEADERS_MAX: Final = 4096


def split(token: str) -> Jws:
    """Split and decode a compact JWS strictly, without verifying it (to find the ``kid``)."""
    if not isinstance(token, str) or not token.isascii():
        raise SignatureError("not an ASCII string", "jws")
    if len(token) > MAX_TOKEN_CHARS:
        raise SignatureError(f"{len(token)} characters, too long", "jws")
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureError(f"{len(parts)} parts, a compact JWS has 3", "jws")
    header_b64, payload_b64, signature_b64 = parts
    known = _HEADERS.get(header_b64)
    if known is None:
        known = _read_header(header_b64)
        if len(_HEADERS) >= _HEADERS_MAX:
            _HEADERS.clear()
        _HEADERS[header_b64] = known
    alg, kid = known
    return Jws(
        alg=alg,
        kid=kid,
        payload=b64url_decode(payload_b64, "jws.payload"),
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=b64url_decode(signature_b64, "jws.signature"),
    )


def _read_header(header_b64: str) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of a JWS header, checked strictly (see the module docstring)."""
    header = loads_strict(b64url_decode(header_b64, "jws.header"), "jws.header", SignatureError)
    if not isinstance(header, dict):
        raise SignatureError("header is not an object", "jws.header")
    unknown = set(header) - _HEADER_FIELDS
    if unknown:
        names = sorted(name[:40] for name in unknown)[:5]
        raise SignatureError(f"unsupported header parameters {names}", "jws.header")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        shown = repr(alg)[:80]
        raise SignatureError(f"algorithm {shown} is refused; allowed: {ALGORITHMS}", "alg")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("kid is missing or not a string", "kid")
    if not _KID.fullmatch(kid):
        raise SignatureError(f"kid {kid[:80]!r} is not a device id", "kid")
    return alg, kid


def verify(token: str, key: PublicKey) -> Jws:
    """Verify a compact JWS with ``key``; returns its parts or raises ``SignatureError``."""
    jws = split(token)
    verify_parts(jws, key)
    return jws


def verify_parts(jws: Jws, key: PublicKey) -> None:
    """Verify a JWS already split (``split``) with ``key``; raises ``SignatureError``. For a
    caller that split the token to find its ``kid``: the token is not split twice."""
    expected = algorithm_for(key)
    if jws.alg not in ACCEPTED_ALGORITHMS[expected]:
        raise SignatureError(f"header says {jws.alg}, the key is for {expected}", "alg")
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(jws.signature, jws.signing_input)
        else:
            if len(jws.signature) != 64:
                raise SignatureError("ES256 signature is not 64 bytes", "jws.signature")
            r = int.from_bytes(jws.signature[:32], "big")
            s = int.from_bytes(jws.signature[32:], "big")
            key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not verify", "jws.signature") from None


def verify_record(token: str, keys: KeyResolver) -> Record:
    """Verify a record's JWS with its device's key and parse it strictly.

    The key is looked up by the header's ``kid``, which must equal the payload's ``device``.
    Raises ``SignatureError`` or ``RecordError`` (both ``ProtocolError``).
    """
    jws = split(token)
    kid = jws.kid
    verify_parts(jws, keys(kid))
    record = parse_record(jws.payload)
    if record.device != kid:
        raise SignatureError(f"kid {kid!r} signed a record of {record.device!r}", "device")
    return record


def load_public_key(pem: bytes) -> PublicKey:
    """Load a PEM public key (Ed25519 or P-256); raises ``SignatureError`` otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"not a usable PEM public key: {exc}", "key") from None
    if not isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise SignatureError(f"{type(key).__name__} keys are not allowed", "key")
    algorithm_for(key)
    return key


def public_pem(key: PublicKey) -> str:
    """Return a public key as PEM (SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
