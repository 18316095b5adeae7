"""OBD-II through an ELM327 adapter on a serial port (USB, Bluetooth SPP, ``socket://`` Wi-Fi).

Every read has a deadline: a silent adapter, a cut link or an endless stream of noise ends
in AdapterTimeoutError, never a hang.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import serial

from .elm327_text import CAN_HEADER_DIGITS, NO_ANSWER, PROTOCOLS, adapter_error, parse_reply
from .errors import AdapterError, AdapterTimeoutError, MalformedResponseError
from .reassembly import Reassembler
from .transport import EcuAnswer

log = logging.getLogger(__name__)

#: AT initialisation: reset, echo off, linefeeds off, spaces off, headers on, auto protocol.
INIT_COMMANDS = ("ATE0", "ATL0", "ATS0", "ATH1", "ATSP0")
DEFAULT_BAUD = 38400
#: Deadline for an AT command; ATZ may take a second on genuine chips.
AT_TIMEOUT_S = 3.0
#: Deadline for an OBD request; the first one after ATSP0 includes the protocol search.
DEFAULT_TIMEOUT_S = 10.0
#: Name of the sender when headers are off and the adapter hides which ECU answered.
UNKNOWN_ECU = "elm327"


class Elm327Transport:
    """An initialised ELM327 adapter on ``port`` (a device path or a pyserial URL).

    Opening resets the adapter and runs :data:`INIT_COMMANDS` (a refused setting is logged;
    the parser copes with echo, spaces and linefeeds); an adapter that refuses ATH1
    is used with headers off (answers then carry the ECU name :data:`UNKNOWN_ECU`). Raises
    AdapterError when the port cannot be opened or the adapter is not an ELM327, and
    AdapterTimeoutError when it gives no ``>`` prompt before a deadline. Lines that are not
    adapter text are counted in :attr:`rejected` (``garbage``) and skipped.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUD,
        timeout: float = DEFAULT_TIMEOUT_S,
        at_timeout: float = AT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._port_name = port
        self._timeout = timeout
        self._at_timeout = at_timeout
        self._clock = clock
        self._headers = True
        self._protocol_number: str | None = None
        self.rejected: Counter[str] = Counter()
        self.reassembler = Reassembler()
        self.version = ""
        try:
            self._serial = serial.serial_for_url(
                port, baudrate=baudrate, timeout=0.05, write_timeout=at_timeout
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise AdapterError(f"cannot open ELM327 port {port}: {exc}") from exc
        try:
            self._initialise()
        except AdapterError:
            self._serial.close()
            raise

    def _initialise(self) -> None:
        banner = self.command("ATZ", self._at_timeout)
        self.version = next((line for line in banner if "ELM327" in line.upper()), "")
        if not self.version:
            raise AdapterError(f"{self._port_name}: no ELM327 banner after ATZ (got {banner!r})")
        for cmd in INIT_COMMANDS:
            reply = self.command(cmd, self._at_timeout)
            if "OK" not in reply:
                # clones lack some settings; echo, spaces and linefeeds are parsed either way
                log.warning("%s refuses %s (%s); carrying on", self.version, cmd, reply)
                if cmd == "ATH1":
                    self._headers = False
        log.info("ELM327 on %s: %s", self._port_name, self.version)

    @property
    def protocol(self) -> str:
        """The protocol the adapter settled on (after the first request), else ``auto``."""
        if self._protocol_number is None:
            return "auto"
        return PROTOCOLS.get(self._protocol_number, f"ELM327 protocol {self._protocol_number}")

    def command(self, text: str, deadline_s: float) -> list[str]:
        """Send ``text`` and return the reply lines before the ``>`` prompt.

        Echo of ``text``, empty lines and ``SEARCHING...`` are dropped. Raises
        AdapterTimeoutError when no prompt arrives within ``deadline_s``.
        """
        try:
            # whatever is still pending belongs to an earlier, failed exchange
            self._serial.reset_input_buffer()
            self._serial.write(text.encode("ascii") + b"\r")
        except serial.SerialException as exc:  # SerialTimeoutException included
            raise AdapterError(f"{self._port_name}: cannot write {text}: {exc}") from exc
        deadline = time.monotonic() + deadline_s
        buffer = bytearray()
        while b">" not in buffer:
            if time.monotonic() >= deadline:
                raise AdapterTimeoutError(
                    f"{self._port_name}: no '>' prompt within {deadline_s:.1f} s after {text}"
                    f" (received {bytes(buffer)[-60:]!r})"
                )
            try:
                buffer += self._serial.read(max(1, self._serial.in_waiting))
            except serial.SerialException as exc:
                raise AdapterError(f"{self._port_name}: read failed after {text}: {exc}") from exc
        text_part = bytes(buffer[: buffer.index(b">")]).replace(b"\0", b"")
        lines = []
        for raw in text_part.decode("ascii", errors="replace").replace("\n", "\r").split("\r"):
            line = raw.strip()
            if not line or line.replace(" ", "").upper() == text.upper():
                continue
            if line.upper().startswith("SEARCHING"):
                continue
            lines.append(line)
        return lines

    def request(self, payload: bytes, expect: frozenset[str] | None = None) -> list[EcuAnswer]:
        """Send an OBD request; return each ECU's answer, [] for ``NO DATA``.

        With ``expect``, the request carries the ELM327 answer count (``010D1``) so the
        adapter returns after that many answers instead of waiting out its own timeout.

        Raises AdapterError for an adapter or bus error reply (``?``, ``STOPPED``,
        ``BUS INIT: ...ERROR``, ``UNABLE TO CONNECT``, ...).
        """
        text = payload.hex().upper()
        if expect and len(expect) <= 0xF and self._protocol_number is not None:
            text += f"{len(expect):X}"
        lines = self.command(text, self._timeout)
        timestamp = self._clock()
        if self._protocol_number is None:
            self._detect_protocol()
        if any(line.upper().startswith(NO_ANSWER) for line in lines):
            return []
        error = adapter_error(lines, text)
        if error is not None:
            raise error
        digits = None
        if self._headers:
            number = self._protocol_number
            if number is not None and number not in CAN_HEADER_DIGITS:
                raise AdapterError(
                    f"{self._port_name}: protocol {self.protocol} is not ISO 15765-4 CAN; "
                    "this agent reads CAN answers only"
                )
            digits = CAN_HEADER_DIGITS.get(number or "6")
        reply = parse_reply(lines, digits)
        for line in reply.garbage:
            self.rejected["garbage"] += 1
            log.warning("%s: skipped unreadable line %r after %s", self._port_name, line, text)
        # Headers off: ECUs cannot be told apart; their answers share one name.
        answers = [EcuAnswer(UNKNOWN_ECU, message, timestamp) for message in reply.messages]
        for header, data in reply.frames:
            message = self.reassembler.feed(header, data, timestamp)
            if message is not None:
                answers.append(EcuAnswer(header, message, timestamp))
        cut = self.reassembler.abandon()
        if cut and not answers:
            raise MalformedResponseError(f"{text}: answer from {', '.join(cut)} ended mid-message")
        for header in cut:
            log.warning("%s: answer from %s to %s ended mid-message", self._port_name, header, text)
        return answers

    def _detect_protocol(self) -> None:
        reply = self.command("ATDPN", self._at_timeout)
        number = reply[0].upper().lstrip("A") if reply else ""
        if number in PROTOCOLS:
            self._protocol_number = number
            log.info("%s: protocol %s", self._port_name, self.protocol)
        else:
            log.warning("%s: ATDPN answered %r", self._port_name, reply)

    def close(self) -> None:
        """Close the serial port."""
        self._serial.close()
