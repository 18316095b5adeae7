"""A simulated ELM327 adapter on a pseudo-terminal, in front of simulated ECUs.

Point any serial client at :attr:`Elm327Simulator.port`. It speaks the ELM327 text protocol
(AT commands, echo, linefeeds, spaces, headers, ``SEARCHING...``, ``NO DATA``, ``0:``/``1:``
segments with headers off) and can misbehave: print garbage before answers, answer every OBD
request with a fixed error text (``STOPPED``, ``BUS INIT: ...ERROR``, ``?``), refuse
AT commands, or stay silent. :class:`Elm327Quirks` (named in :data:`QUIRKS`) adds the ways
adapters as they are sold, clones above all, differ from the datasheet.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import select
import termios
import threading
import time
import tty
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .reassembly import segment
from .sim_ecu import SimulatedEcu

log = logging.getLogger(__name__)

_SETTINGS = {"E": "echo", "L": "linefeeds", "S": "spaces", "H": "headers"}
#: termios speed constants and the baud rates they stand for.
_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios) if re.fullmatch(r"B\d+", n)}
#: What a client reading at the wrong serial speed receives for a reply: bytes with the high
#: bit set, control characters, and a ``>`` that is noise, not a prompt.
GARBLED = b"\xf8\x00\xe6\x9e\x80>\xfe\x1c\xf0\x86\xe0"

MultiPid = Literal["answered", "refused", "no_data", "first_only"]
Headers = Literal["settable", "refused", "ignored"]


@dataclass(frozen=True, slots=True)
class Elm327Quirks:
    """How a simulated adapter departs from a genuine ELM327; the defaults are a genuine one.

    ``multi_pid``: a mode 01 request of several PIDs is ``answered``, ``refused`` (``?``),
    given ``no_data`` or answered for the first PID only (``first_only``). ``headers``:
    ``ATH1`` takes effect (``settable``), is answered ``?`` (``refused``) or ``OK`` with headers
    staying off (``ignored``). ``spaces_on`` and ``echo_on``: ``ATS0``/``ATE0`` answer ``OK``
    and change nothing. ``lowercase``: hex digits in lower case. ``count_refused``: a request
    with an answer count digit (``010D1``, ELM327 v1.3 and later) is answered ``?``, as by
    clones of v1.0 that print "v1.5" anyway. ``error`` is answered instead
    of the first ``error_first`` OBD requests and then of every ``error_every``-th (0: none);
    an ``error`` starting with ``<`` (``<DATA ERROR``) is appended to the answer's last line
    instead. ``search_s``: the protocol search on a first request takes that long (a
    character received meanwhile stops it: ``STOPPED``). ``baudrate``: the one serial speed
    (read from the pty's termios) at which the adapter is readable; at any other, every
    reply arrives as :data:`GARBLED`.
    """

    multi_pid: MultiPid = "answered"
    headers: Headers = "settable"
    spaces_on: bool = False
    echo_on: bool = False
    lowercase: bool = False
    count_refused: bool = False
    error: str | None = None
    error_first: int = 0
    error_every: int = 0
    search_s: float = 0.0
    baudrate: int | None = None

    def error_for(self, n: int) -> str | None:
        """The error text the ``n``-th OBD request (from 1) meets, None for a normal answer."""
        every = self.error_every and n % self.error_every == 0
        return self.error if n <= self.error_first or every else None


#: Named adapter behaviours: ``Elm327Simulator(quirks=QUIRKS["multi_pid_refused"])``,
#: ``msp-agent obd --simulate elm327 --quirk multi_pid_refused``.
QUIRKS: dict[str, Elm327Quirks] = {
    "multi_pid_refused": Elm327Quirks(multi_pid="refused"),
    "multi_pid_no_data": Elm327Quirks(multi_pid="no_data"),
    "multi_pid_first_only": Elm327Quirks(multi_pid="first_only"),
    "headers_refused": Elm327Quirks(headers="refused"),
    "headers_ignored": Elm327Quirks(headers="ignored"),
    "spaces_on": Elm327Quirks(spaces_on=True),
    "lowercase": Elm327Quirks(lowercase=True),
    "count_refused": Elm327Quirks(count_refused=True),
    "echo_on": Elm327Quirks(echo_on=True),
    "can_error": Elm327Quirks(error="CAN ERROR", error_first=1, error_every=7),
    "buffer_full": Elm327Quirks(error="BUFFER FULL", error_first=1, error_every=7),
    "bus_busy": Elm327Quirks(error="BUS BUSY", error_first=1, error_every=7),
    "data_error": Elm327Quirks(error="<DATA ERROR", error_first=1, error_every=7),
    "stopped": Elm327Quirks(error="STOPPED", error_first=1, error_every=7),
    # the first search meets ECUs still asleep; the repeated request finds them
    "unable_to_connect": Elm327Quirks(error="UNABLE TO CONNECT", error_first=1),
    # ignition off: no request ever finds a protocol
    "dead": Elm327Quirks(error="UNABLE TO CONNECT", error_every=1),
    "slow_search": Elm327Quirks(search_s=3.0),
    "baud_9600": Elm327Quirks(baudrate=9600),
    "baud_115200": Elm327Quirks(baudrate=115200),
    "baud_500000": Elm327Quirks(baudrate=500000),
}


def combine_quirks(names: Iterable[str]) -> Elm327Quirks:
    """The quirks of every named behaviour together; ValueError names an unknown or clash."""
    fields: dict[str, object] = {}
    default = Elm327Quirks()
    for name in names:
        if name not in QUIRKS:
            raise ValueError(f"unknown ELM327 quirk {name!r} (known: {', '.join(sorted(QUIRKS))})")
        for field in dataclasses.fields(Elm327Quirks):
            value = getattr(QUIRKS[name], field.name)
            if value == getattr(default, field.name):
                continue
            if fields.get(field.name, value) != value:
                raise ValueError(f"ELM327 quirk {name!r} contradicts an earlier one ({field.name})")
            fields[field.name] = value
    return dataclasses.replace(default, **fields)  # type: ignore[arg-type]


class Elm327Simulator:
    """An ELM327 on a pty answering for ``ecus`` (CAN 11-bit, or 29-bit with ``extended``).

    ``garbage`` is written before every OBD answer; ``reply`` replaces every OBD answer;
    ``silent`` reads commands and never answers; AT commands in ``refuse`` get ``?``, as some
    clones answer settings they lack; ``quirks`` adds the behaviours of :class:`Elm327Quirks`.
    :attr:`commands` lists the commands understood, :attr:`garbled` counts the lines that
    arrived at a wrong serial speed. Use as a context manager, or start()/stop().
    """

    def __init__(
        self,
        ecus: list[SimulatedEcu],
        *,
        extended: bool = False,
        garbage: bytes = b"",
        reply: str | None = None,
        silent: bool = False,
        refuse: frozenset[str] = frozenset(),
        version: str = "ELM327 v1.5",
        quirks: Elm327Quirks = Elm327Quirks(),
    ) -> None:
        self._ecus = ecus
        self._quirks = quirks
        self._extended = extended
        self._garbage = garbage
        self._reply = reply
        self._silent = silent
        self._refuse = refuse
        self._version = version
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="elm327-sim", daemon=True)
        self._t0 = 0.0
        self.commands: list[str] = []
        self.garbled = 0
        self._obd_requests = 0
        self._reset()

    def _reset(self) -> None:
        self._flags = {"echo": True, "linefeeds": True, "spaces": True, "headers": False}
        self._searched = False

    def __enter__(self) -> Elm327Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start answering on :attr:`port`."""
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close the pty."""
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._master)
        os.close(self._slave)

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.05)
            if not readable:
                continue
            try:
                pending += os.read(self._master, 1024)
            except OSError as exc:
                log.debug("ELM327 simulator read: %s", exc)
                continue
            while b"\r" in pending:
                line, pending = pending.split(b"\r", 1)
                command = line.decode("ascii", errors="replace").strip()
                if not command:
                    continue
                if self._wrong_speed():
                    self.garbled += 1
                    if not self._silent:
                        os.write(self._master, GARBLED)
                    continue
                self._handle(command)

    def _wrong_speed(self) -> bool:
        """True when the client set a serial speed other than the adapter's (quirk)."""
        if self._quirks.baudrate is None:
            return False
        return _SPEEDS.get(termios.tcgetattr(self._slave)[4]) != self._quirks.baudrate

    def _write(self, text: str) -> None:
        os.write(self._master, text.encode("ascii"))

    @property
    def _end(self) -> str:
        return "\r\n" if self._flags["linefeeds"] else "\r"

    def _handle(self, command: str) -> None:
        self.commands.append(command)
        if self._silent:
            return
        if self._flags["echo"]:
            self._write(command + "\r")
        lines = self._answer(command.replace(" ", "").upper())
        self._write(self._end.join(lines) + self._end + self._end + ">")

    def _search(self) -> bool:
        """Print SEARCHING... and take ``search_s``; False when a character stopped it."""
        self._write("SEARCHING..." + self._end)
        readable, _, _ = select.select([self._master], [], [], self._quirks.search_s)
        return not readable

    def _answer(self, cmd: str) -> list[str]:
        if cmd == "ATZ":
            self._reset()
            return ["", self._version]
        if cmd == "ATI":
            return [self._version]
        if cmd[:2] == "AT" and len(cmd) == 4 and cmd[2] in _SETTINGS and cmd[3] in "01":
            quirks = self._quirks
            if cmd in self._refuse or (cmd == "ATH1" and quirks.headers == "refused"):
                return ["?"]
            stuck = (
                (cmd == "ATH1" and quirks.headers == "ignored")
                or (cmd == "ATS0" and quirks.spaces_on)
                or (cmd == "ATE0" and quirks.echo_on)
            )
            if not stuck:
                self._flags[_SETTINGS[cmd[2]]] = cmd[3] == "1"
            return ["OK"]
        if cmd.startswith("ATSP"):
            self._searched = False
            return ["OK"]
        if cmd == "ATDPN":
            number = "7" if self._extended else "6"
            return [("A" + number) if self._searched else "A0"]
        if cmd.startswith("AT"):
            return ["?"]
        if len(cmd) % 2:  # a trailing digit is the answer count the adapter waits for
            if self._quirks.count_refused:
                return ["?"]
            cmd = cmd[:-1]
        try:
            request = bytes.fromhex(cmd)
        except ValueError:
            return ["?"]
        if self._garbage:
            os.write(self._master, self._garbage)
        quirks = self._quirks
        self._obd_requests += 1
        lines = [] if self._searched else ["SEARCHING..."]
        if lines and quirks.search_s > 0:
            lines = []
            if not self._search():
                return ["STOPPED"]
        error = quirks.error_for(self._obd_requests)
        if error == "UNABLE TO CONNECT":
            return [*lines, error]  # no protocol found: the next request searches again
        self._searched = True
        if self._reply is not None:
            return [*lines, self._reply]
        if error and not error.startswith("<"):
            return [*lines, error]
        if request[:1] == b"\x01" and len(request) > 2 and quirks.multi_pid != "answered":
            if quirks.multi_pid == "refused":
                return ["?"]
            if quirks.multi_pid == "no_data":
                return [*lines, "NO DATA"]
            request = request[:2]
        answers = []
        for ecu in self._ecus:
            answer = ecu.answer(request, time.monotonic() - self._t0)
            if answer is not None:
                answers += self._format(ecu, answer)
        if error and answers:
            answers[-1] += " " + error
        return lines + (answers or ["NO DATA"])

    def _hex(self, data: bytes) -> str:
        text = data.hex(" ") if self._flags["spaces"] else data.hex()
        return text if self._quirks.lowercase else text.upper()

    def _format(self, ecu: SimulatedEcu, answer: bytes) -> list[str]:
        frames = segment(answer)
        if ecu.behaviour == "truncated" and len(frames) > 1:
            frames = frames[:2]
        if self._flags["headers"]:
            sep = " " if self._flags["spaces"] else ""
            if self._extended:
                header = sep.join(["18", "DA", "F1", f"{ecu.response_id & 0xFF:02X}"])
            else:
                header = f"{ecu.response_id:03X}"
            if self._quirks.lowercase:
                header = header.lower()
            return [header + sep + self._hex(frame) for frame in frames]
        if len(frames) == 1:
            return [self._hex(answer)]
        segments = [answer[:6]] + [frame[1:] for frame in frames[1:]]
        return [f"{len(answer):03X}"] + [
            f"{i & 0xF:X}: {self._hex(s)}" for i, s in enumerate(segments)
        ]
