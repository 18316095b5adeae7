"""The registry's own signature on what it makes for recipients: a JWS (EdDSA, ``kid``
``msp-registry``) over the message's JSON, with its public key retained on
``msp/v1/registry/key`` (readable by every broker user) and exported by ``msp-registry key``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from msp_protocol.errors import ProtocolError
from msp_protocol.jws import PublicKey, Signer, load_public_key, verify
from msp_protocol.roles import REGISTRY_KEY_TOPIC, REGISTRY_KID

from ..errors import RegistryError
from ..store import Publication, Store

log = logging.getLogger(__name__)


class NotFromRegistry(RegistryError):  # noqa: N818 - a verdict on a message
    """A message that is not a JWS the registry's key verifies (names why)."""


class RegistrySigner:
    """Signs the registry's own messages with its key (``Store.registry_key_pem``)."""

    def __init__(self, store: Store) -> None:
        self._signer = Signer.from_pem(store.registry_key_pem(), REGISTRY_KID)

    def sign(self, value: dict[str, Any]) -> bytes:
        """The JWS compact bytes of ``value`` (JSON, sorted keys)."""
        payload = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
        return self._signer.sign(payload).encode("ascii")

    def with_signature(self, value: dict[str, Any]) -> dict[str, Any]:
        """``value`` with ``registry_jws`` added: this JWS over the other fields, so that a
        message stays plain JSON and its reader can still prove the registry made it."""
        return {**value, "registry_jws": self.sign(value).decode("ascii")}

    def public_pem(self) -> str:
        """The public key (PEM) recipients verify with."""
        return self._signer.public_pem()

    def key_publication(self) -> Publication:
        """The retained message publishing the key (``msp/v1/registry/key``)."""
        value = {"kid": REGISTRY_KID, "alg": "EdDSA", "public_key_pem": self.public_pem()}
        return Publication(REGISTRY_KEY_TOPIC, json.dumps(value, sort_keys=True).encode(),
                           retain=True)  # fmt: skip


def registry_key(pem: bytes) -> PublicKey:
    """The registry's public key from PEM or the retained key message's JSON; raises
    ``NotFromRegistry``."""
    text = pem.strip()
    if text.startswith(b"{"):
        try:
            text = str(json.loads(text)["public_key_pem"]).encode()
        except (ValueError, KeyError, TypeError) as exc:
            raise NotFromRegistry(f"not a registry key message: {exc!r}") from None
    try:
        key = load_public_key(text)
    except ProtocolError as exc:
        raise NotFromRegistry(f"not a registry key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise NotFromRegistry("the registry's key is Ed25519")
    return key


def open_signed(payload: bytes, key: PublicKey) -> dict[str, Any]:
    """The JSON value of a message the registry signed; raises ``NotFromRegistry``."""
    try:
        jws = verify(payload.decode("ascii").strip(), key)
    except (UnicodeDecodeError, ProtocolError) as exc:
        raise NotFromRegistry(f"not signed by the registry: {exc}") from None
    if jws.kid != REGISTRY_KID:
        raise NotFromRegistry(f"kid {jws.kid!r} is not the registry's")
    try:
        value = json.loads(jws.payload)
    except ValueError as exc:
        raise NotFromRegistry(f"signed payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise NotFromRegistry("signed payload is not an object")
    return value
