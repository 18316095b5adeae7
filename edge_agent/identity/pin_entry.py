"""Asking the driver for a PIN: a terminal prompt (CLI), a local UNIX socket an in-vehicle
HMI answers (service), or a PIN given up front (``--pin``).

The socket speaks one JSON line each way per request. The agent sends
``{"type": "pin_request", "purpose": ..., "digits": 4, "tries_left": n}``; the HMI answers
``{"pin": "1234"}`` or ``{"cancel": true}``. Before a login the agent may first ask the
driver about the operator's consent request, category by category:
``{"type": "consent_request", "recipient": "acme", "days": 90, "categories": [{"id":
"driving", "text": "your trips and ..."}, ...]}``; the HMI answers with the categories the
driver accepted, ``{"accept": ["driving", "score"]}`` (``[]`` or ``{"cancel": true}``: none).
The socket file is created 0660 with the agent's group (:data:`SOCKET_MODE`): the HMI runs as
the agent's user or as a user in its group; nobody else can connect.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import PinEntryError

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 512
#: The PIN socket: the agent's user and group read and write (connect), others nothing.
SOCKET_MODE = 0o660


@dataclass(frozen=True, slots=True)
class PinRequest:
    """What the driver is asked for: which PIN, its length, and the tries it has left."""

    purpose: str
    digits: int
    tries_left: int


class PinEntry(Protocol):
    """Gets one PIN from the driver; raises PinEntryError when none comes back."""

    def request_pin(self, request: PinRequest) -> str:
        """Return the PIN the driver entered for ``request``."""
        ...


class FixedPinEntry:
    """Returns the PIN it was given (``msp-agent card login --pin``) for every request."""

    def __init__(self, pin: str) -> None:
        self._pin = pin

    def request_pin(self, request: PinRequest) -> str:
        """Return the fixed PIN."""
        return self._pin


class TerminalPinEntry:
    """Prompts on the controlling terminal without echo."""

    def request_pin(self, request: PinRequest) -> str:
        """Prompt for the PIN; Ctrl-D or Ctrl-C cancels."""
        prompt = (f"{request.purpose} ({request.digits} digits, "
                  f"{request.tries_left} tries left): ")
        try:
            return getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt) as exc:
            raise PinEntryError("PIN entry cancelled at the terminal") from exc


class SocketPinEntry:
    """Serves PIN requests on a UNIX socket at ``path``; one HMI connection per request.

    ``request_pin`` waits up to ``timeout_s`` for the HMI to connect and answer.
    """

    def __init__(self, path: Path, timeout_s: float = 60.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        path.unlink(missing_ok=True)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o777 & ~SOCKET_MODE)  # never wider than SOCKET_MODE, even briefly
        try:
            self._server.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, SOCKET_MODE)
        self._server.listen(1)

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        self._server.close()
        self.path.unlink(missing_ok=True)

    def request_pin(self, request: PinRequest) -> str:
        """Send the request to the next HMI connection and return the PIN it answers."""
        deadline = time.monotonic() + self.timeout_s
        self._server.settimeout(self.timeout_s)
        try:
            conn, _ = self._server.accept()
        except TimeoutError as exc:
            raise PinEntryError(f"no PIN from the HMI on {self.path} within "
                                f"{self.timeout_s:g} s") from exc
        with conn:
            message = {"type": "pin_request", "purpose": request.purpose,
                       "digits": request.digits, "tries_left": request.tries_left}
            try:
                conn.sendall(json.dumps(message).encode() + b"\n")
                reply = self._read_line(conn, deadline)
            except OSError as exc:
                raise PinEntryError(f"HMI connection on {self.path} failed: {exc}") from exc
        return self._parse_reply(reply)

    def ask_consent(self, recipient: str, days: float,
                    categories: Sequence[tuple[str, str]]) -> tuple[str, ...]:  # fmt: skip
        """Ask the driver on the HMI which of ``categories`` (id, description) to share with
        ``recipient`` for ``days``; returns the ids accepted (a category the request did not
        name is ignored and logged). Raises ``PinEntryError`` if the HMI does not answer."""
        deadline = time.monotonic() + self.timeout_s
        self._server.settimeout(self.timeout_s)
        try:
            conn, _ = self._server.accept()
        except TimeoutError as exc:
            raise PinEntryError(f"no consent answer from the HMI on {self.path} within "
                                f"{self.timeout_s:g} s") from exc
        with conn:
            message = {"type": "consent_request", "recipient": recipient, "days": days,
                       "categories": [{"id": c, "text": t} for c, t in categories]}
            try:
                conn.sendall(json.dumps(message).encode() + b"\n")
                line = self._read_line(conn, deadline)
            except OSError as exc:
                raise PinEntryError(f"HMI connection on {self.path} failed: {exc}") from exc
        try:
            reply = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PinEntryError(f"the HMI reply on {self.path} is not JSON: {exc}") from exc
        if not isinstance(reply, dict):
            raise PinEntryError(f"the HMI reply on {self.path} is not a JSON object")
        if reply.get("cancel") is True:
            return ()
        accepted = reply.get("accept")
        if not isinstance(accepted, list) or not all(isinstance(a, str) for a in accepted):
            raise PinEntryError(f"the HMI reply on {self.path} has no list of strings 'accept'")
        asked = [c for c, _t in categories]
        extra = sorted(set(accepted) - set(asked))
        if extra:
            log.warning("the HMI accepted categories nobody asked for: %s (ignored)",
                        ", ".join(extra))  # fmt: skip
        return tuple(c for c in asked if c in accepted)

    def _read_line(self, conn: socket.socket, deadline: float) -> bytes:
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PinEntryError(f"the HMI on {self.path} did not answer in time")
            conn.settimeout(remaining)
            try:
                chunk = conn.recv(MAX_REPLY_BYTES)
            except TimeoutError as exc:
                raise PinEntryError(f"the HMI on {self.path} did not answer in time") from exc
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REPLY_BYTES:
                raise PinEntryError(f"the HMI reply on {self.path} exceeds {MAX_REPLY_BYTES} "
                                    "bytes")
        return data.split(b"\n", 1)[0]

    def _parse_reply(self, line: bytes) -> str:
        try:
            reply = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PinEntryError(f"the HMI reply on {self.path} is not JSON: {exc}") from exc
        if not isinstance(reply, dict):
            raise PinEntryError(f"the HMI reply on {self.path} is not a JSON object")
        if reply.get("cancel") is True:
            raise PinEntryError("the driver cancelled PIN entry on the HMI")
        pin = reply.get("pin")
        if not isinstance(pin, str):
            raise PinEntryError(f"the HMI reply on {self.path} has no string field 'pin'")
        return pin
