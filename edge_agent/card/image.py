"""Virtual card images: the key, certificates, PINs and licence data of one test card, as a
JSON file written 0600 (it holds a private key), and ``make_test_card`` that issues one."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import CardImageError
from .issuer import TestIssuer, new_rsa_key, write_private
from .layout import JPKI_AUTH_PIN_RULE, LICENCE_PIN_RULE
from .licence import LicenceData

log = logging.getLogger(__name__)

IMAGE_FORMAT = "msp-virtual-card/1"


@dataclass(frozen=True, slots=True)
class CardImage:
    """Everything a virtual My Number Card holds. ``licence`` None: a card without licence."""

    auth_key: rsa.RSAPrivateKey
    auth_certificate: bytes  # DER
    auth_ca_certificate: bytes  # DER
    jpki_pin: str
    licence: LicenceData | None
    licence_pin: str
    jpki_tries_left: int = JPKI_AUTH_PIN_RULE.max_tries
    licence_tries_left: int = LICENCE_PIN_RULE.max_tries


def save_image(image: CardImage, path: Path) -> None:
    """Write ``image`` as JSON, mode 0600."""
    doc: dict[str, Any] = {
        "format": IMAGE_FORMAT,
        "jpki": {
            "auth_key": image.auth_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii"),
            "auth_certificate": base64.b64encode(image.auth_certificate).decode("ascii"),
            "auth_ca_certificate": base64.b64encode(image.auth_ca_certificate).decode("ascii"),
            "pin": image.jpki_pin,
            "tries_left": image.jpki_tries_left,
        },
        "licence": None if image.licence is None else {
            "expiry": image.licence.expiry.isoformat(),
            "categories": list(image.licence.categories),
            "pin": image.licence_pin,
            "tries_left": image.licence_tries_left,
        },
    }
    write_private(path, (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def _field(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise CardImageError(f"{where}.{key}: expected {kind.__name__}, got {value!r:.40}")
    return value


def load_image(path: Path) -> CardImage:
    """Read a card image; raises CardImageError naming the file and the bad field."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CardImageError(f"{path}: cannot read card image: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardImageError(f"{path}: not a JSON card image: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != IMAGE_FORMAT:
        raise CardImageError(f"{path}: format is not {IMAGE_FORMAT!r}")
    jpki = _field(doc, "jpki", dict, str(path))
    where = f"{path}: jpki"
    try:
        key = serialization.load_pem_private_key(
            _field(jpki, "auth_key", str, where).encode("ascii"), password=None
        )
        cert = base64.b64decode(_field(jpki, "auth_certificate", str, where), validate=True)
        ca = base64.b64decode(_field(jpki, "auth_ca_certificate", str, where), validate=True)
    except (ValueError, TypeError) as exc:
        raise CardImageError(f"{where}: key or certificate does not decode: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != 2048:
        raise CardImageError(f"{where}.auth_key: expected an RSA-2048 key")
    licence: LicenceData | None = None
    licence_pin, licence_tries = "", LICENCE_PIN_RULE.max_tries
    if doc.get("licence") is not None:
        lic = _field(doc, "licence", dict, str(path))
        lwhere = f"{path}: licence"
        try:
            expiry = date.fromisoformat(_field(lic, "expiry", str, lwhere))
        except ValueError as exc:
            raise CardImageError(f"{lwhere}.expiry: not YYYY-MM-DD: {exc}") from exc
        categories = _field(lic, "categories", list, lwhere)
        if not all(isinstance(c, str) for c in categories):
            raise CardImageError(f"{lwhere}.categories: expected a list of strings")
        licence = LicenceData(expiry, tuple(categories))
        licence_pin = _field(lic, "pin", str, lwhere)
        licence_tries = _field(lic, "tries_left", int, lwhere)
    return CardImage(
        auth_key=key, auth_certificate=cert, auth_ca_certificate=ca,
        jpki_pin=_field(jpki, "pin", str, where), licence=licence, licence_pin=licence_pin,
        jpki_tries_left=_field(jpki, "tries_left", int, where), licence_tries_left=licence_tries,
    )


def make_test_card(
    issuer: TestIssuer, *, label: str = "MSP test card", pin: str = "1234",
    licence: LicenceData | None = None, licence_pin: str | None = None,
) -> CardImage:
    """Issue a new test card: fresh RSA-2048 key, certificate from ``issuer``, given PINs."""
    for rule, value in ((JPKI_AUTH_PIN_RULE, pin), (LICENCE_PIN_RULE, licence_pin or pin)):
        if not rule.check_format(value):
            raise CardImageError(f"the {rule.label} must be {rule.digits} digits")
    key = new_rsa_key()
    certificate = issuer.issue_auth_certificate(key.public_key(), label)
    return CardImage(
        auth_key=key,
        auth_certificate=certificate.public_bytes(serialization.Encoding.DER),
        auth_ca_certificate=issuer.certificate.public_bytes(serialization.Encoding.DER),
        jpki_pin=pin, licence=licence, licence_pin=licence_pin or pin,
    )
