"""ISO 7816-4 APDUs: command/response encoding, status words, and the exchanges built on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .errors import (
    CardDataError,
    CardFileNotFoundError,
    SecurityStatusError,
    StatusWordError,
    UnsupportedInstructionError,
)
from .transport import CardTransport

log = logging.getLogger(__name__)

# Status words the card stack gives a meaning to.
SW_OK = 0x9000
SW_END_OF_FILE = 0x6282  # fewer bytes than Le: the end of the file was reached
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_STATUS = 0x6982
SW_PIN_BLOCKED = 0x6983
SW_NO_CURRENT_EF = 0x6986
SW_WRONG_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_REF_NOT_FOUND = 0x6A88
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_VERIFY = 0x20
INS_COMPUTE_SIGNATURE = 0x2A
INS_GET_RESPONSE = 0xC0

#: Largest Le of a short APDU (encoded as 00).
MAX_SHORT_LE = 256


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A short command APDU; ``le`` is the expected response length (None: no Le byte)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def encode(self) -> bytes:
        """Return the wire bytes (ISO 7816-4 short form, cases 1 to 4)."""
        if len(self.data) > 255:
            raise ValueError(f"command data of {len(self.data)} bytes needs an extended APDU")
        out = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            if not 1 <= self.le <= MAX_SHORT_LE:
                raise ValueError(f"Le {self.le} is outside 1..256")
            out += bytes((self.le % MAX_SHORT_LE,))
        return out

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode wire bytes; raises ValueError when the length bytes do not add up."""
        if len(raw) < 4:
            raise ValueError(f"a command APDU has at least 4 bytes, got {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or MAX_SHORT_LE)
        lc = body[0]
        if lc == 0:
            raise ValueError("extended-length APDUs are not supported")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[1:]))
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[1 : 1 + lc]), le=body[-1] or MAX_SHORT_LE)
        raise ValueError(f"Lc {lc} does not match the {len(body) - 1} bytes that follow it")

    def describe(self) -> str:
        """Return a log-safe summary: the data of VERIFY (a PIN) is never shown."""
        if self.ins == INS_VERIFY and self.data:
            return f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X} <PIN withheld>"
        return self.encode().hex(" ").upper()


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data and the two status bytes."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split wire bytes into data and status word; raises ValueError under 2 bytes."""
        if len(raw) < 2:
            raise ValueError(f"a response APDU has at least 2 bytes, got {len(raw)}")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    def encode(self) -> bytes:
        """Return the wire bytes."""
        return self.data + self.sw.to_bytes(2, "big")

    @property
    def ok(self) -> bool:
        """True for 90 00."""
        return self.sw == SW_OK


def raise_for_status(response: ResponseApdu, what: str) -> None:
    """Raise the StatusWordError subclass matching a failed response; ``what`` names the step."""
    sw = response.sw
    if sw == SW_OK:
        return
    if sw == SW_FILE_NOT_FOUND:
        raise CardFileNotFoundError(f"{what}: no such application or file", sw)
    if sw == SW_SECURITY_STATUS:
        raise SecurityStatusError(f"{what}: the PIN has not been verified", sw)
    if sw in (SW_INS_NOT_SUPPORTED, SW_CLA_NOT_SUPPORTED):
        raise UnsupportedInstructionError(f"{what}: the card does not support this command", sw)
    raise StatusWordError(what, sw)


class ApduChannel:
    """Exchanges APDUs with one card over a transport, following 61 xx and 6C xx replies."""

    def __init__(self, transport: CardTransport) -> None:
        self.transport = transport

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command`` and return the card's complete response (status not checked)."""
        log.debug("card <- %s", command.describe())
        response = ResponseApdu.parse(self.transport.transmit(command.encode()))
        if response.sw >> 8 == 0x6C:  # wrong Le: the card says how many bytes it has
            fixed = CommandApdu(command.cla, command.ins, command.p1, command.p2, command.data,
                                response.sw & 0xFF or MAX_SHORT_LE)
            response = ResponseApdu.parse(self.transport.transmit(fixed.encode()))
        data = response.data
        while response.sw >> 8 == 0x61:  # more data waiting: GET RESPONSE
            more = CommandApdu(0x00, INS_GET_RESPONSE, 0, 0, le=response.sw & 0xFF or MAX_SHORT_LE)
            response = ResponseApdu.parse(self.transport.transmit(more.encode()))
            data += response.data
        log.debug("card -> %d bytes, SW %04X", len(data), response.sw)
        return ResponseApdu(data, response.sw)

    def select_aid(self, aid: bytes, what: str) -> None:
        """SELECT an application by its AID (no FCI returned); raises CardFileNotFoundError."""
        raise_for_status(self.transmit(CommandApdu(0x00, INS_SELECT, 0x04, 0x0C, aid)), what)

    def select_ef(self, fid: int, what: str) -> None:
        """SELECT an elementary file of the current application by its 2-byte identifier."""
        command = CommandApdu(0x00, INS_SELECT, 0x02, 0x0C, fid.to_bytes(2, "big"))
        raise_for_status(self.transmit(command), what)

    def read_binary(self, offset: int, length: int, what: str) -> bytes:
        """READ BINARY up to ``length`` (≤ 256) bytes at ``offset`` of the current EF."""
        if not 0 <= offset <= 0x7FFF:
            raise CardDataError(f"{what}: offset {offset} is beyond what READ BINARY can address")
        command = CommandApdu(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, le=length)
        response = self.transmit(command)
        if response.sw != SW_END_OF_FILE:
            raise_for_status(response, what)
        return response.data

    def read_tlv_file(self, what: str) -> bytes:
        """Read the whole current EF, sized by the BER length of its first TLV (chained reads)."""
        head = self.read_binary(0, 7, what)
        total = tlv_total_length(head, what)
        out = bytearray(head[:total])
        while len(out) < total:
            chunk = self.read_binary(len(out), min(MAX_SHORT_LE, total - len(out)), what)
            if not chunk:
                raise CardDataError(
                    f"{what}: file ended at byte {len(out)} of the {total} its header announces"
                )
            out += chunk
        return bytes(out[:total])

    def read_whole_file(self, what: str, limit: int = 0x2000) -> bytes:
        """Read the current EF from offset 0 until the card signals its end (short read,
        62 82, or 6B 00 past the end); refuses files over ``limit`` bytes."""
        out = bytearray()
        while len(out) < limit:
            command = CommandApdu(0x00, INS_READ_BINARY, len(out) >> 8, len(out) & 0xFF,
                                  le=MAX_SHORT_LE)
            response = self.transmit(command)
            if response.sw == SW_WRONG_P1P2 and out:
                break
            if response.sw != SW_END_OF_FILE:
                raise_for_status(response, what)
            out += response.data
            if len(response.data) < MAX_SHORT_LE or response.sw == SW_END_OF_FILE:
                break
        else:
            raise CardDataError(f"{what}: file is larger than {limit} bytes")
        return bytes(out)


def tlv_total_length(head: bytes, what: str) -> int:
    """Return tag + length + value size of the BER-TLV starting ``head`` (a DER certificate)."""
    if len(head) < 2:
        raise CardDataError(f"{what}: file too short for a TLV header ({len(head)} bytes)")
    tag_len = 1
    if head[0] & 0x1F == 0x1F:
        while tag_len < len(head) and head[tag_len] & 0x80:
            tag_len += 1
        tag_len += 1
    if tag_len >= len(head):
        raise CardDataError(f"{what}: TLV tag runs past the first {len(head)} bytes")
    first = head[tag_len]
    if first < 0x80:
        return tag_len + 1 + first
    count = first & 0x7F
    if count == 0 or count > 3 or tag_len + 1 + count > len(head):
        raise CardDataError(f"{what}: unsupported TLV length byte {first:02X} at offset {tag_len}")
    value_len = int.from_bytes(head[tag_len + 1 : tag_len + 1 + count], "big")
    return tag_len + 1 + count + value_len
