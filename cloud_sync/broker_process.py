"""Run mosquitto as a child process with a configuration from ``cloud_sync.mosquitto``.

Used by the demo (one command runs gateway → broker → registry) and by the fault tests, which
stop, restart and pause (SIGSTOP: the network "drops" without closing a socket) the broker.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .errors import BrokerError

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoProcess:
    """One mosquitto child process on the given configuration; :meth:`start` waits for its ports."""

    def __init__(self, config: Path, ports: tuple[int, ...], log_file: Path | None = None) -> None:
        self.config = config
        self.ports = ports
        self.log_file = log_file or config.with_name("mosquitto.log")
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """True if a ``mosquitto`` binary is on PATH or in /usr/sbin."""
        return MosquittoProcess._binary() is not None

    @staticmethod
    def _binary() -> str | None:
        return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until every port accepts connections."""
        binary = self._binary()
        if binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.config), "-v"], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not all(_listening(port) for port in self.ports):
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode}; see {self.log_file}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on {self.ports}; see {self.log_file}")
            time.sleep(0.05)
        log.info("mosquitto pid %d listening on %s", self._proc.pid, self.ports)

    def stop(self) -> None:
        """Stop mosquitto (SIGTERM, then SIGKILL); it saves its persistence file on SIGTERM."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def reload(self) -> None:
        """Make mosquitto re-read its ACL and password files (SIGHUP); listeners stay."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): sockets stay open, nothing flows, like a dead link."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused broker (SIGCONT)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
