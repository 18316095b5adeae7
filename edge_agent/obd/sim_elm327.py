"""A simulated ELM327 adapter on a pseudo-terminal, in front of simulated ECUs.

Point any serial client at :attr:`Elm327Simulator.port`. It speaks the ELM327 text protocol
(AT commands, echo, linefeeds, spaces, headers, ``SEARCHING...``, ``NO DATA``, ``0:``/``1:``
segments with headers off) and can misbehave: print garbage before answers, answer every OBD
request with a fixed error text (``STOPPED``, ``BUS INIT: ...ERROR``, ``?``), refuse
AT commands, or stay silent.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty

from .reassembly import segment
from .sim_ecu import SimulatedEcu

log = logging.getLogger(__name__)

_SETTINGS = {"E": "echo", "L": "linefeeds", "S": "spaces", "H": "headers"}


class Elm327Simulator:
    """An ELM327 on a pty answering for ``ecus`` (CAN 11-bit, or 29-bit with ``extended``).

    ``garbage`` is written before every OBD answer; ``reply`` replaces every OBD answer;
    ``silent`` reads commands and never answers; AT commands in ``refuse`` get ``?``, as some
    clones answer settings they lack. Use as a context manager, or start()/stop().
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
    ) -> None:
        self._ecus = ecus
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
                if command:
                    self._handle(command)

    def _write(self, text: str) -> None:
        os.write(self._master, text.encode("ascii"))

    def _handle(self, command: str) -> None:
        self.commands.append(command)
        if self._silent:
            return
        if self._flags["echo"]:
            self._write(command + "\r")
        lines = self._answer(command.replace(" ", "").upper())
        end = "\r\n" if self._flags["linefeeds"] else "\r"
        self._write(end.join(lines) + end + end + ">")

    def _answer(self, cmd: str) -> list[str]:
        if cmd == "ATZ":
            self._reset()
            return ["", self._version]
        if cmd == "ATI":
            return [self._version]
        if cmd[:2] == "AT" and len(cmd) == 4 and cmd[2] in _SETTINGS and cmd[3] in "01":
            if cmd in self._refuse:
                return ["?"]
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
            cmd = cmd[:-1]
        try:
            request = bytes.fromhex(cmd)
        except ValueError:
            return ["?"]
        if self._garbage:
            os.write(self._master, self._garbage)
        lines = [] if self._searched else ["SEARCHING..."]
        self._searched = True
        if self._reply is not None:
            return [*lines, self._reply]
        answers = []
        for ecu in self._ecus:
            answer = ecu.answer(request, time.monotonic() - self._t0)
            if answer is not None:
                answers += self._format(ecu, answer)
        return lines + (answers or ["NO DATA"])

    def _hex(self, data: bytes) -> str:
        return data.hex(" ").upper() if self._flags["spaces"] else data.hex().upper()

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
            return [header + sep + self._hex(frame) for frame in frames]
        if len(frames) == 1:
            return [self._hex(answer)]
        segments = [answer[:6]] + [frame[1:] for frame in frames[1:]]
        return [f"{len(answer):03X}"] + [
            f"{i & 0xF:X}: {self._hex(s)}" for i, s in enumerate(segments)
        ]
