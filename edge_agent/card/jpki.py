"""JPKI client: the user-authentication certificate, its PIN, and signatures made by the card."""

from __future__ import annotations

import hashlib
import logging

from .apdu import ApduChannel, CommandApdu, raise_for_status
from .errors import CardDataError
from .layout import (
    JPKI_AID,
    JPKI_AUTH_PIN_RULE,
    JPKI_EF_AUTH_CA_CERT,
    JPKI_EF_AUTH_CERT,
    JPKI_EF_AUTH_KEY,
    JPKI_EF_AUTH_PIN,
    JPKI_EF_TOKEN,
    JPKI_VERIFY_P2,
)
from .pin import tries_left, verify_once

log = logging.getLogger(__name__)

#: DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
RSA_2048_SIGNATURE_BYTES = 256


def sha256_digest_info(message: bytes) -> bytes:
    """Return the DER DigestInfo of SHA-256(message): what the card pads and signs."""
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


class JpkiClient:
    """Talks to the JPKI application over an open channel.

    Reading certificates needs no PIN; ``sign_sha256`` needs ``verify_pin`` first in the same
    card session. Only the user-authentication key is used (not the signing key).
    """

    def __init__(self, channel: ApduChannel) -> None:
        self.channel = channel

    def select(self) -> None:
        """SELECT the JPKI AP; raises CardFileNotFoundError when the card has none."""
        self.channel.select_aid(JPKI_AID, "SELECT JPKI AP")

    def token(self) -> bytes:
        """Read the card-type token (b"JPKIAPICCTOKEN2" on a My Number Card)."""
        self.select()
        self.channel.select_ef(JPKI_EF_TOKEN, "SELECT JPKI token EF")
        return self.channel.read_binary(0, 0x20, "READ JPKI token").rstrip(b"\x00 ")

    def auth_certificate(self) -> bytes:
        """Read the DER user-authentication certificate (EF 000A; no PIN needed)."""
        return self._read_certificate(JPKI_EF_AUTH_CERT, "user-authentication certificate")

    def auth_ca_certificate(self) -> bytes:
        """Read the DER certificate of the CA that issued it (EF 000B)."""
        return self._read_certificate(JPKI_EF_AUTH_CA_CERT, "user-authentication CA certificate")

    def _read_certificate(self, fid: int, label: str) -> bytes:
        self.select()
        self.channel.select_ef(fid, f"SELECT {label} EF {fid:04X}")
        der = self.channel.read_tlv_file(f"READ {label} EF {fid:04X}")
        if der[:1] != b"\x30":
            raise CardDataError(f"{label} EF {fid:04X} does not hold a DER certificate")
        return der

    def pin_tries_left(self) -> int:
        """Return how many tries the user-authentication PIN has left (0: locked)."""
        self.select()
        self.channel.select_ef(JPKI_EF_AUTH_PIN, "SELECT JPKI PIN EF 0018")
        return tries_left(self.channel, JPKI_VERIFY_P2, JPKI_AUTH_PIN_RULE)

    def verify_pin(self, pin: str) -> None:
        """VERIFY the 4-digit user-authentication PIN once (see ``edge_agent.card.pin``)."""
        self.select()
        self.channel.select_ef(JPKI_EF_AUTH_PIN, "SELECT JPKI PIN EF 0018")
        verify_once(self.channel, JPKI_VERIFY_P2, JPKI_AUTH_PIN_RULE, pin)

    def sign_sha256(self, message: bytes) -> bytes:
        """Have the card sign SHA-256(message) with the user-authentication key.

        Returns the 256-byte RSA PKCS#1 v1.5 signature, verifiable with the certificate's
        public key as ``RSA/PKCS1v15/SHA-256`` over ``message``.
        """
        digest_info = sha256_digest_info(message)
        self.channel.select_ef(JPKI_EF_AUTH_KEY, "SELECT JPKI auth key EF 0017")
        command = CommandApdu(0x80, 0x2A, 0x00, 0x80, digest_info, le=256)
        response = self.channel.transmit(command)
        raise_for_status(response, "COMPUTE DIGITAL SIGNATURE")
        if len(response.data) != RSA_2048_SIGNATURE_BYTES:
            raise CardDataError(
                f"COMPUTE DIGITAL SIGNATURE returned {len(response.data)} bytes, expected 256"
            )
        return response.data
