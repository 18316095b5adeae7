"""Answers sealed to the person: HPKE (RFC 9180) base mode to a key only they hold.

The registry answers a ``request`` record on ``msp/v1/dev/{device}/reply`` with JSON messages
``{"request", "nonce", "part", "parts", "sealed"}``: the answer's plaintext cut into parts of
at most :data:`PART_BYTES`, each sealed on its own to the request's ``reply_key`` (raw X25519,
base64url) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM and ``info`` =
``msp/v1 reply {request} {part}/{parts}``; ``sealed`` is the encapsulated key followed by
the ciphertext, base64url. Only the holder of the private key (the gateway process that made
the request, in memory) can open it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from .errors import SealError
from .jws import b64url

__all__ = ["PART_BYTES", "SUITE", "SealError", "open_profile", "open_reply", "profile_info",
           "public_key_of", "reply_info", "seal_profile", "seal_reply"]

#: Plaintext bytes per sealed part (well under the broker's packet bound).
PART_BYTES: Final = 128 * 1024
#: The HPKE suite of every reply.
SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)


def reply_info(request: str, part: int, parts: int) -> bytes:
    """The HPKE ``info`` of one part: binds it to the request and its place."""
    return f"msp/v1 reply {request} {part}/{parts}".encode()


def seal_reply(request: str, nonce: str, plaintext: bytes, reply_key: str) -> list[bytes]:
    """The reply messages carrying ``plaintext`` sealed to ``reply_key`` (base64url raw
    X25519); raises ``SealError`` for a key that is not one."""
    try:
        key = x25519.X25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(reply_key + "="))
    except ValueError as exc:
        raise SealError(f"reply_key is not an X25519 public key: {exc}", "reply_key") from None
    chunks = [plaintext[i:i + PART_BYTES] for i in range(0, len(plaintext), PART_BYTES)] or [b""]
    out = []
    for part, chunk in enumerate(chunks, start=1):
        sealed = SUITE.encrypt(chunk, key, info=reply_info(request, part, len(chunks)))
        out.append(json.dumps({"request": request, "nonce": nonce, "part": part,
                               "parts": len(chunks), "sealed": b64url(sealed)}).encode())
    return out


def open_reply(messages: list[Mapping[str, Any]], private: x25519.X25519PrivateKey) -> bytes:
    """The plaintext of a complete reply (every part, any order); raises ``SealError`` if a
    part is missing or does not open with ``private``."""
    if not messages:
        raise SealError("no reply", "reply")
    try:
        parts = int(messages[0]["parts"])
        by_part = {int(m["part"]): m for m in messages}
        if sorted(by_part) != list(range(1, parts + 1)):
            raise SealError(f"reply incomplete: parts {sorted(by_part)} of {parts}", "part")
        out = b""
        for part in range(1, parts + 1):
            m = by_part[part]
            text = str(m["sealed"])
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            out += SUITE.decrypt(sealed, private, info=reply_info(str(m["request"]), part, parts))
    except (KeyError, TypeError, ValueError, InvalidTag) as exc:
        raise SealError(f"reply does not open: {exc!r}", "sealed") from None
    return out


# -- emergency profiles (issue 15): sealed by the gateway to one responder ----------------------


def profile_info(responder: str) -> bytes:
    """The HPKE ``info`` of an emergency profile: binds the ciphertext to its responder."""
    return f"msp/v1 profile {responder}".encode()


def public_key_of(text: str) -> x25519.X25519PublicKey:
    """An X25519 public key from its base64url raw form; raises ``SealError``."""
    try:
        return x25519.X25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError) as exc:
        raise SealError(f"not an X25519 public key: {exc}", "public_key") from None


def seal_profile(plaintext: bytes, responder: str, public_key: str) -> str:
    """``plaintext`` sealed to ``responder``'s key (base64url raw X25519): base64url of the
    encapsulated key followed by the ciphertext. Raises ``SealError``."""
    sealed = SUITE.encrypt(plaintext, public_key_of(public_key), info=profile_info(responder))
    return b64url(sealed)


def open_profile(sealed: str, responder: str, private: x25519.X25519PrivateKey) -> bytes:
    """The plaintext of a sealed profile; raises ``SealError`` if it does not open."""
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        return SUITE.decrypt(raw, private, info=profile_info(responder))
    except (ValueError, TypeError, InvalidTag) as exc:
        raise SealError(f"profile does not open: {exc!r}", "sealed") from None
