"""A virtual My Number Card: the JPKI and licence APs with the real card's files, PIN
counters, lock, status words and RSA signing, logging every APDU it answers.

It also carries the card-text and card-face APs with a decoy number, so that a selection the
agent must never make would succeed and show in the log.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass, field, replace
from enum import Enum

from .apdu import (
    INS_COMPUTE_SIGNATURE,
    INS_READ_BINARY,
    INS_SELECT,
    INS_VERIFY,
    SW_CLA_NOT_SUPPORTED,
    SW_END_OF_FILE,
    SW_FILE_NOT_FOUND,
    SW_INS_NOT_SUPPORTED,
    SW_NO_CURRENT_EF,
    SW_OK,
    SW_PIN_BLOCKED,
    SW_REF_NOT_FOUND,
    SW_SECURITY_STATUS,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    CommandApdu,
    ResponseApdu,
)
from .image import CardImage
from .layout import (
    FACE_AP_AID,
    JPKI_AID,
    JPKI_AUTH_PIN_RULE,
    JPKI_EF_AUTH_CA_CERT,
    JPKI_EF_AUTH_CERT,
    JPKI_EF_AUTH_KEY,
    JPKI_EF_AUTH_PIN,
    JPKI_EF_TOKEN,
    JPKI_TOKEN,
    LICENCE_AID,
    LICENCE_EF_DATA,
    LICENCE_EF_PIN,
    LICENCE_EF_PIN_FLAG,
    LICENCE_EF_SIGNATURE,
    LICENCE_PIN_RULE,
    MY_NUMBER_CARD_ATR,
    TEXT_AP_AID,
)
from .licence import encode_licence_data

log = logging.getLogger(__name__)

#: What the virtual card-text AP holds instead of a My Number; never a real number.
DECOY_MY_NUMBER = b"000000000000"
_SW_FILE_INCOMPATIBLE = 0x6981
_RSA_2048_MAX_DIGEST_INFO = 256 - 11


class Kind(Enum):
    """What an elementary file is."""

    BINARY = "binary"
    PIN = "pin"
    KEY = "key"


@dataclass(slots=True)
class _File:
    kind: Kind
    data: bytes = b""
    needs_pin: bool = False


@dataclass(slots=True)
class _App:
    files: dict[int, _File]
    pin_fid: int | None = None
    pin: str = ""
    max_tries: int = 0
    tries: int = 0


@dataclass(frozen=True, slots=True)
class ApduLogEntry:
    """One command the card answered (VERIFY data masked) and its status word."""

    command: CommandApdu
    sw: int
    selected_aid: bytes | None  # the AID of a SELECT by name, else None


@dataclass(slots=True)
class _State:
    app: bytes | None = None
    ef: int | None = None
    verified: set[bytes] = field(default_factory=set)


class VirtualCard:
    """Answers APDUs like a My Number Card built from ``image``; thread-safe.

    PIN counters persist across power cycles (as on the chip); the selection and the
    verified PINs do not. ``log`` lists every command answered since creation.
    """

    def __init__(self, image: CardImage) -> None:
        self.image = image
        self.log: list[ApduLogEntry] = []
        self._lock = threading.Lock()
        self._state = _State()
        self._apps: dict[bytes, _App] = {
            JPKI_AID: _App(
                files={
                    JPKI_EF_TOKEN: _File(Kind.BINARY, JPKI_TOKEN.ljust(0x20, b" ")),
                    JPKI_EF_AUTH_CERT: _File(Kind.BINARY, image.auth_certificate),
                    JPKI_EF_AUTH_CA_CERT: _File(Kind.BINARY, image.auth_ca_certificate),
                    JPKI_EF_AUTH_KEY: _File(Kind.KEY),
                    JPKI_EF_AUTH_PIN: _File(Kind.PIN),
                },
                pin_fid=JPKI_EF_AUTH_PIN, pin=image.jpki_pin,
                max_tries=JPKI_AUTH_PIN_RULE.max_tries, tries=image.jpki_tries_left,
            ),
            TEXT_AP_AID: _App(files={0x0001: _File(Kind.BINARY, DECOY_MY_NUMBER)}),
            FACE_AP_AID: _App(files={}),
        }
        if image.licence is not None:
            self._apps[LICENCE_AID] = _App(
                files={
                    LICENCE_EF_PIN_FLAG: _File(Kind.BINARY, b"\xc1\x01\x01"),
                    LICENCE_EF_PIN: _File(Kind.PIN),
                    LICENCE_EF_DATA: _File(
                        Kind.BINARY, encode_licence_data(image.licence), needs_pin=True
                    ),
                    LICENCE_EF_SIGNATURE: _File(Kind.BINARY, b"", needs_pin=True),
                },
                pin_fid=LICENCE_EF_PIN, pin=image.licence_pin,
                max_tries=LICENCE_PIN_RULE.max_tries, tries=image.licence_tries_left,
            )

    def tries_left(self, aid: bytes) -> int:
        """The PIN counter of application ``aid`` now."""
        return self._apps[aid].tries

    def power_on(self) -> bytes:
        """Reset selection and PIN verification; return the ATR."""
        with self._lock:
            self._state = _State()
        return MY_NUMBER_CARD_ATR

    def atr(self) -> bytes:
        """The My Number Card's ATR."""
        return MY_NUMBER_CARD_ATR

    def selected_aids(self) -> list[bytes]:
        """Every AID a SELECT by name asked for, in order (answered or not)."""
        return [entry.selected_aid for entry in self.log if entry.selected_aid is not None]

    def process(self, apdu: bytes) -> bytes:
        """Answer one command APDU (never raises: malformed input gets 67 00)."""
        with self._lock:
            try:
                command = CommandApdu.parse(apdu)
            except ValueError:
                log.debug("virtual card: malformed APDU %s", apdu.hex())
                response = ResponseApdu(b"", SW_WRONG_LENGTH)
                self.log.append(ApduLogEntry(CommandApdu(0, 0, 0, 0), response.sw, None))
                return response.encode()
            response = self._dispatch(command)
            masked = replace(command, data=b"*" * len(command.data)) if (
                command.ins == INS_VERIFY) else command
            aid = command.data if command.ins == INS_SELECT and command.p1 == 0x04 else None
            self.log.append(ApduLogEntry(masked, response.sw, aid))
            log.debug("virtual card: %s -> %04X", masked.describe(), response.sw)
            return response.encode()

    def _dispatch(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.cla not in (0x00, 0x80):
            return ResponseApdu(b"", SW_CLA_NOT_SUPPORTED)
        if cmd.ins == INS_SELECT and cmd.cla == 0x00:
            return self._select(cmd)
        if cmd.ins == INS_READ_BINARY and cmd.cla == 0x00:
            return self._read_binary(cmd)
        if cmd.ins == INS_VERIFY and cmd.cla == 0x00:
            return self._verify(cmd)
        if cmd.ins == INS_COMPUTE_SIGNATURE and cmd.cla == 0x80:
            return self._sign(cmd)
        return ResponseApdu(b"", SW_INS_NOT_SUPPORTED)

    def _sw(self, sw: int) -> ResponseApdu:
        return ResponseApdu(b"", sw)

    def _select(self, cmd: CommandApdu) -> ResponseApdu:
        state = self._state
        if cmd.p1 == 0x04:
            if cmd.data not in self._apps:
                return self._sw(SW_FILE_NOT_FOUND)
            state.app, state.ef = cmd.data, None
            return self._sw(SW_OK)
        if cmd.p1 == 0x00 and cmd.data in (b"", b"\x3f\x00"):
            state.app, state.ef = None, None
            return self._sw(SW_OK)
        if cmd.p1 == 0x02:
            if len(cmd.data) != 2:
                return self._sw(SW_WRONG_LENGTH)
            fid = int.from_bytes(cmd.data, "big")
            if state.app is None or fid not in self._apps[state.app].files:
                return self._sw(SW_FILE_NOT_FOUND)
            state.ef = fid
            return self._sw(SW_OK)
        return self._sw(SW_WRONG_P1P2)

    def _read_binary(self, cmd: CommandApdu) -> ResponseApdu:
        state = self._state
        if cmd.p1 & 0x80:  # short-EF addressing: not offered by this card
            return self._sw(SW_WRONG_P1P2)
        if state.app is None or state.ef is None:
            return self._sw(SW_NO_CURRENT_EF)
        file = self._apps[state.app].files[state.ef]
        if file.kind is not Kind.BINARY:
            return self._sw(_SW_FILE_INCOMPATIBLE)
        if file.needs_pin and state.app not in state.verified:
            return self._sw(SW_SECURITY_STATUS)
        offset = (cmd.p1 << 8) | cmd.p2
        if offset > len(file.data):
            return self._sw(SW_WRONG_P1P2)
        wanted = cmd.le or 256
        chunk = file.data[offset : offset + wanted]
        return ResponseApdu(chunk, SW_OK if len(chunk) == wanted else SW_END_OF_FILE)

    def _verify(self, cmd: CommandApdu) -> ResponseApdu:
        state = self._state
        if state.app is None or cmd.p1 != 0 or not cmd.p2 & 0x80:
            return self._sw(SW_REF_NOT_FOUND)
        app = self._apps[state.app]
        short_id = cmd.p2 & 0x1F
        target = state.ef if short_id == 0 else short_id
        if app.pin_fid is None or target != app.pin_fid:
            return self._sw(SW_REF_NOT_FOUND)
        if app.tries == 0:
            return self._sw(SW_PIN_BLOCKED)
        if not cmd.data:
            if state.app in state.verified:
                return self._sw(SW_OK)
            return self._sw(0x63C0 | app.tries)
        if hmac.compare_digest(cmd.data, app.pin.encode("ascii")):
            app.tries = app.max_tries
            state.verified.add(state.app)
            return self._sw(SW_OK)
        app.tries -= 1
        state.verified.discard(state.app)
        return self._sw(0x63C0 | app.tries)

    def _sign(self, cmd: CommandApdu) -> ResponseApdu:
        state = self._state
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return self._sw(SW_WRONG_P1P2)
        if state.app is None or state.ef is None:
            return self._sw(SW_NO_CURRENT_EF)
        if self._apps[state.app].files[state.ef].kind is not Kind.KEY:
            return self._sw(_SW_FILE_INCOMPATIBLE)
        if state.app not in state.verified:
            return self._sw(SW_SECURITY_STATUS)
        if not cmd.data or len(cmd.data) > _RSA_2048_MAX_DIGEST_INFO:
            return self._sw(SW_WRONG_LENGTH)
        return ResponseApdu(_rsa_pkcs1_sign_raw(self.image, cmd.data), SW_OK)


def _rsa_pkcs1_sign_raw(image: CardImage, digest_info: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 over a DigestInfo the host built: pad (EMSA type 1), then m^d mod n.

    The card signs whatever DigestInfo it is sent, as the real one does (RFC 8017 §8.2.1).
    """
    numbers = image.auth_key.private_numbers()
    size = (image.auth_key.key_size + 7) // 8
    padded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    signature = pow(int.from_bytes(padded, "big"), numbers.d, numbers.public_numbers.n)
    return signature.to_bytes(size, "big")
