"""Serves a card simulator to pcscd through vsmartcard's ``vpcd`` reader driver.

vpcd listens on TCP (35963 for its first slot); the card side connects to it. Each message
is a 2-byte big-endian length and a payload: 1-byte control codes (00 power off, 01 power on,
02 reset, 04 get ATR) or a command APDU, answered with the response APDU. Connecting is
inserting the card; disconnecting is removing it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from .errors import ReaderError
from .transport import CardSimulator

log = logging.getLogger(__name__)

VPCD_DEFAULT_PORT = 35963
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0, 1, 2, 4
_POLL_S = 0.2


def _recv_exact(sock: socket.socket, size: int, stop: threading.Event) -> bytes | None:
    """Read ``size`` bytes; None when the peer closed or ``stop`` was set."""
    out = bytearray()
    while len(out) < size:
        if stop.is_set():
            return None
        try:
            chunk = sock.recv(size - len(out))
        except TimeoutError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        out += chunk
        _quick_ack(sock)
    return bytes(out)


def _quick_ack(sock: socket.socket) -> None:
    """ACK at once: vpcd writes length and APDU separately, and Nagle on its side would hold
    the APDU back until our delayed ACK (~40 ms per command)."""
    quick_ack = getattr(socket, "TCP_QUICKACK", None)
    if quick_ack is not None:
        sock.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)


class VpcdCard:
    """Puts ``card`` into the vpcd reader at ``host:port`` (``insert``) and takes it out
    (``remove``); a background thread answers vpcd while the card is in."""

    def __init__(self, card: CardSimulator, host: str = "127.0.0.1",
                 port: int = VPCD_DEFAULT_PORT) -> None:
        self.card = card
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.closed_by_reader = threading.Event()

    @property
    def inserted(self) -> bool:
        """Whether the card is connected to vpcd."""
        return self._thread is not None and self._thread.is_alive()

    def insert(self, timeout_s: float = 10.0) -> None:
        """Connect to vpcd, retrying until ``timeout_s`` (pcscd may still be loading it)."""
        if self.inserted:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=_POLL_S * 5)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ReaderError(
                        f"vpcd does not listen on {self.host}:{self.port} (is pcscd running "
                        f"with the vpcd reader configured?): {exc}"
                    ) from exc
                time.sleep(_POLL_S)
        sock.settimeout(_POLL_S)
        self._sock = sock
        self._stop.clear()
        self.closed_by_reader.clear()
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                        name=f"vpcd-{self.port}")
        self._thread.start()
        log.info("virtual card inserted into vpcd at %s:%d", self.host, self.port)

    def remove(self) -> None:
        """Disconnect from vpcd: the reader sees the card leave."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        log.info("virtual card removed from vpcd at %s:%d", self.host, self.port)

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            header = _recv_exact(sock, 2, self._stop)
            if header is None:
                break
            payload = _recv_exact(sock, int.from_bytes(header, "big"), self._stop)
            if payload is None:
                break
            reply = self._answer(payload)
            if reply is not None:
                try:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
                except OSError as exc:
                    log.warning("vpcd connection lost while answering: %s", exc)
                    break
        if not self._stop.is_set():
            log.warning("vpcd at %s:%d closed the connection", self.host, self.port)
            self.closed_by_reader.set()

    def _answer(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            code = payload[0]
            if code in (_POWER_ON, _RESET):
                self.card.power_on()
                return None
            if code == _POWER_OFF:
                return None
            if code == _GET_ATR:
                return self.card.atr()
            log.warning("vpcd sent unknown control code %02X; ignored", code)
            return None
        return self.card.process(payload)
