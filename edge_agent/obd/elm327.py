"""OBD-II through an ELM327 adapter on a serial port (USB, Bluetooth SPP, ``socket://`` Wi-Fi).

Every read has a deadline: a silent adapter, a cut link or an endless stream of noise ends
in AdapterTimeoutError, never a hang. Adapters as they are sold differ (clones especially);
what this module copes with is listed in docs/obd.md, "Adapters as they are sold".
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from .elm327_text import (
    CAN_HEADER_DIGITS,
    NO_ANSWER,
    PROTOCOLS,
    adapter_error,
    is_garbled,
    looks_headerless,
    parse_reply,
)
from .errors import AdapterError, AdapterReplyError, AdapterTimeoutError, MalformedResponseError
from .reassembly import Reassembler
from .transport import EcuAnswer

log = logging.getLogger(__name__)

#: AT initialisation: reset, echo off, linefeeds off, spaces off, headers on, auto protocol.
INIT_COMMANDS = ("ATE0", "ATL0", "ATS0", "ATH1", "ATSP0")
DEFAULT_BAUD = 38400
#: Serial speeds tried in turn when the adapter's is not known: the ELM327 default, the speed
#: of older chips and many Bluetooth clones, and the two of fast clones.
BAUD_RATES: tuple[int, ...] = (38400, 9600, 115200, 500000)
#: Deadline for an AT command; ATZ may take a second on genuine chips.
AT_TIMEOUT_S = 3.0
#: Deadline for an OBD request.
DEFAULT_TIMEOUT_S = 10.0
#: Deadline for a request once the adapter printed ``SEARCHING...``: a protocol search
#: through the slow K-line inits takes several seconds, longer than any answer should.
SEARCH_TIMEOUT_S = 30.0
#: Times a request is repeated after a transient error reply (CAN ERROR, BUS BUSY, ...).
DEFAULT_RETRIES = 2
#: Pause before such a repeat, so a busy or noisy bus gets a moment.
RETRY_PAUSE_S = 0.1
#: After bytes no ELM327 prints, this long without a ``>`` prompt means the speed is wrong.
GARBLED_QUIET_S = 0.15
#: Name of the sender when headers are off and the adapter hides which ECU answered.
UNKNOWN_ECU = "elm327"


class _GarbledError(AdapterError):
    """Bytes no ELM327 prints and no prompt: the serial speed is wrong."""


@dataclass(frozen=True, slots=True)
class AdapterStatus:
    """What the adapter turned out to be, for ``msp-agent obd --json`` (see docs/obd.md).

    ``protocol_number`` is the ELM327 protocol (``ATDPN``: ``6`` for CAN 11-bit 500 kbaud)
    once a request settled it, None before; ``protocol_auto`` says the adapter found it by
    searching. ``headers`` is False when the adapter refused or ignored ``ATH1``;
    ``answer_count`` False when it refused the answer count digit (``010D1``). ``errors``
    counts error replies by kind, repeated ones included; ``garbage_lines`` the unreadable
    lines skipped.
    """

    version: str
    baudrate: int
    protocol_number: str | None
    protocol_auto: bool
    headers: bool
    answer_count: bool
    errors: dict[str, int]
    garbage_lines: int

    def to_json(self) -> dict[str, Any]:
        """The ``elm327`` object of ``msp-agent obd --json``."""
        return {
            "version": self.version,
            "baudrate": self.baudrate,
            "protocol_number": self.protocol_number,
            "protocol_auto": self.protocol_auto,
            "headers": self.headers,
            "answer_count": self.answer_count,
            "errors": dict(sorted(self.errors.items())),
            "garbage_lines": self.garbage_lines,
        }


class Elm327Transport:
    """An initialised ELM327 adapter on ``port`` (a device path or a pyserial URL).

    Opening resets the adapter and runs :data:`INIT_COMMANDS` (a refused setting is logged;
    the parser copes with echo, spaces, linefeeds and lower-case hex); an adapter that
    refuses ATH1, or accepts it and still answers without headers, is used with headers off
    (answers then carry the ECU name :data:`UNKNOWN_ECU`). ``baudrate=None`` tries
    :data:`BAUD_RATES` in turn until the adapter answers ``ATZ`` readably. Raises
    AdapterError when the port cannot be opened or the adapter is not an ELM327, and
    AdapterTimeoutError when it gives no ``>`` prompt before a deadline. Lines that are not
    adapter text are counted in :attr:`rejected` (``garbage``) and skipped; error replies
    by kind in :attr:`errors`.
    """

    def __init__(
        self,
        port: str,
        baudrate: int | None = DEFAULT_BAUD,
        timeout: float = DEFAULT_TIMEOUT_S,
        at_timeout: float = AT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        *,
        search_timeout: float = SEARCH_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        retry_pause_s: float = RETRY_PAUSE_S,
    ) -> None:
        self._port_name = port
        self._timeout = timeout
        self._at_timeout = at_timeout
        self._search_timeout = search_timeout
        self._retries = retries
        self._retry_pause = retry_pause_s
        self._clock = clock
        self._headers = True
        self._headers_seen = False  # a reply proved the header lines are really there
        self._answer_count = True  # the adapter takes "010D1": return after 1 answer
        self._protocol_number: str | None = None
        self._protocol_auto = False
        self.rejected: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.reassembler = Reassembler()
        self.version = ""
        self.baudrate = baudrate or BAUD_RATES[0]
        try:
            self._serial = serial.serial_for_url(
                port, baudrate=self.baudrate, timeout=0.05, write_timeout=at_timeout
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise AdapterError(f"cannot open ELM327 port {port}: {exc}") from exc
        try:
            banner = self.command("ATZ", at_timeout) if baudrate else self._find_speed()
            self._initialise(banner)
        except AdapterError:
            self._serial.close()
            raise

    def _find_speed(self) -> list[str]:
        """Send ATZ at each of :data:`BAUD_RATES` until a readable reply; return it."""
        failures = []
        for rate in BAUD_RATES:
            try:
                self._serial.baudrate = rate
                banner = self.command("ATZ", self._at_timeout, garbled_fails=True)
            except _GarbledError:
                failures.append(f"{rate}: garbled")
            except AdapterTimeoutError:
                failures.append(f"{rate}: silent")
            except (serial.SerialException, ValueError) as exc:
                failures.append(f"{rate}: {exc}")
            else:
                self.baudrate = rate
                log.info("%s: the adapter answers at %d baud", self._port_name, rate)
                return banner
            log.info("%s: nothing readable at %s", self._port_name, failures[-1])
        raise AdapterError(
            f"{self._port_name}: no ELM327 answers ATZ at any of "
            f"{', '.join(map(str, BAUD_RATES))} baud ({'; '.join(failures)})"
        )

    def _initialise(self, banner: list[str]) -> None:
        self.version = next((line for line in banner if "ELM327" in line.upper()), "")
        if not self.version:
            garbled = any(c == "\ufffd" or not c.isprintable() for line in banner for c in line)
            hint = " (unreadable: is the serial speed right?)" if garbled else ""
            raise AdapterError(
                f"{self._port_name}: no ELM327 banner after ATZ{hint} (got {banner!r})"
            )
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

    def command(self, text: str, deadline_s: float, *, garbled_fails: bool = False) -> list[str]:
        """Send ``text`` and return the reply lines before the ``>`` prompt.

        Echo of ``text``, empty lines and ``SEARCHING...`` are dropped. Raises
        AdapterTimeoutError when no prompt arrives within ``deadline_s``; once the adapter
        printed ``SEARCHING...`` the deadline is the longer search timeout. With
        ``garbled_fails``, bytes no ELM327 prints followed by a quiet spell without a prompt
        raise AdapterError at once (the probe of a serial speed).
        """
        try:
            # whatever is still pending belongs to an earlier, failed exchange
            self._serial.reset_input_buffer()
            self._serial.write(text.encode("ascii") + b"\r")
        except serial.SerialException as exc:  # SerialTimeoutException included
            raise AdapterError(f"{self._port_name}: cannot write {text}: {exc}") from exc
        start = time.monotonic()
        deadline = start + deadline_s
        searching = False
        last_byte = start
        buffer = bytearray()
        while b">" not in buffer:
            now = time.monotonic()
            if garbled_fails and now - last_byte >= GARBLED_QUIET_S and is_garbled(buffer):
                raise _GarbledError(f"{self._port_name}: garbled reply to {text}")
            if now >= deadline:
                waited = self._search_timeout if searching else deadline_s
                raise AdapterTimeoutError(
                    f"{self._port_name}: no '>' prompt within {waited:.1f} s after {text}"
                    f"{' (protocol search)' if searching else ''}"
                    f" (received {bytes(buffer)[-60:]!r})"
                )
            try:
                chunk = self._serial.read(max(1, self._serial.in_waiting))
            except serial.SerialException as exc:
                raise AdapterError(f"{self._port_name}: read failed after {text}: {exc}") from exc
            if chunk:
                buffer += chunk
                last_byte = time.monotonic()
            if not searching and b"SEARCHING" in buffer.upper():
                # the adapter tries protocol after protocol; that may take several seconds
                searching = True
                deadline = max(deadline, start + self._search_timeout)
        text_part = bytes(buffer[: buffer.index(b">")]).replace(b"\0", b"")
        if garbled_fails and is_garbled(text_part) and b"ELM327" not in text_part.upper():
            # noise at a wrong speed holds a ">" now and then
            raise _GarbledError(f"{self._port_name}: garbled reply to {text}")
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
        adapter returns after that many answers instead of waiting out its own timeout; an
        adapter that answers that ``?`` is asked without it from then on.
        A transient error reply (``CAN ERROR``, ``BUS BUSY``, ``BUFFER FULL``,
        ``<DATA ERROR``, ``STOPPED``, ``UNABLE TO CONNECT``...) is counted in :attr:`errors`
        and the request repeated up to ``retries`` times.

        Raises AdapterReplyError for an error reply that stays (``?``, ``BUS INIT: ...ERROR``,
        or a transient one on every attempt), naming what the adapter said.
        """
        bare = text = payload.hex().upper()
        if expect and len(expect) <= 0xF and self._answer_count and self._protocol_number:
            text += f"{len(expect):X}"
        attempt = 0
        dropped_count = False
        while True:
            try:
                answers = self._request_once(text)
            except AdapterReplyError as exc:
                self.errors[exc.kind] += 1
                if exc.kind == "refused" and text != bare:
                    text, dropped_count = bare, True  # perhaps it knows no answer count
                    continue
                if not exc.transient or attempt >= self._retries:
                    if attempt:
                        raise AdapterReplyError(
                            f"{exc}, {attempt + 1} times", exc.kind, exc.transient
                        ) from exc
                    raise
                attempt += 1
                log.warning("%s; repeating the request (%d of %d)", exc, attempt, self._retries)
                time.sleep(self._retry_pause)
                continue
            if dropped_count:
                # refused with the count, answered without: a clone of ELM327 v1.0
                log.warning(
                    "%s: %s refuses answer counts (%s); asking without them from now on",
                    self._port_name,
                    self.version,
                    bare,
                )
                self._answer_count = False
            return answers

    def _request_once(self, text: str) -> list[EcuAnswer]:
        lines = self.command(text, self._timeout)
        timestamp = self._clock()
        if self._protocol_number is None:
            self._detect_protocol()
        if any(line.upper().startswith(NO_ANSWER) for line in lines):
            return []
        error = adapter_error(lines, text)
        if error is not None:
            raise AdapterReplyError(f"{self._port_name}: {error}", error.kind, error.transient)
        digits: int | None = None
        if self._headers:
            number = self._protocol_number
            if number is not None and number not in CAN_HEADER_DIGITS:
                raise AdapterError(
                    f"{self._port_name}: protocol {self.protocol} is not ISO 15765-4 CAN; "
                    "this agent reads CAN answers only"
                )
            digits = CAN_HEADER_DIGITS.get(number or "6")
            if not self._headers_seen and looks_headerless(lines):
                log.warning(
                    "%s: %s accepted ATH1 but answers without headers; reading them as such",
                    self._port_name,
                    self.version,
                )
                self._headers = False
                digits = None
        reply = parse_reply(lines, digits)
        if reply.frames:
            self._headers_seen = True
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
        answer = reply[0].strip().upper() if reply else ""
        # "A6": found by the automatic search; "6": set by ATSPn. "A" alone is SAE J1939.
        auto = len(answer) == 2 and answer[0] == "A"
        number = answer[1:] if auto else answer
        if number in PROTOCOLS:
            self._protocol_number = number
            self._protocol_auto = auto
            log.info("%s: protocol %s", self._port_name, self.protocol)
        elif number == "0":  # no protocol settled yet (the search failed or never ran)
            log.debug("%s: ATDPN answered %r", self._port_name, reply)
        else:
            log.warning("%s: ATDPN answered %r", self._port_name, reply)

    def status(self) -> AdapterStatus:
        """What the adapter turned out to be so far (speed, protocol, headers, errors)."""
        return AdapterStatus(
            version=self.version,
            baudrate=self.baudrate,
            protocol_number=self._protocol_number,
            protocol_auto=self._protocol_auto,
            headers=self._headers,
            answer_count=self._answer_count,
            errors=dict(self.errors),
            garbage_lines=self.rejected["garbage"],
        )

    def close(self) -> None:
        """Close the serial port."""
        self._serial.close()
