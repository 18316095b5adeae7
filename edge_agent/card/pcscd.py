"""A private pcscd with one vpcd reader: the real PC/SC stack for tests and demos.

It runs pcscd in the foreground on its own socket, one path per client process (handed over
the way systemd socket activation does, so the system's /run/pcscd is untouched), with a
reader.conf.d holding only a vpcd reader on a port of our choice. Clients find it through
``PCSCLITE_CSOCK_NAME``. Every wait has a deadline; ``stop`` kills the daemon.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .errors import ReaderError
from .pcsc import list_readers

log = logging.getLogger(__name__)

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_NAME = "MSP Virtual PCD"
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and its successor is free:
    vpcd takes the next port for its second slot)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise ReaderError("no free pair of TCP ports for vpcd")


class PrivatePcscd:
    """``with PrivatePcscd(workdir) as pcscd:`` a running pcscd whose first reader is a vpcd
    slot on ``pcscd.port``; ``PCSCLITE_CSOCK_NAME`` points this process at it."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_tcp_port()
        # libpcsclite reads PCSCLITE_CSOCK_NAME once per process, so every private pcscd of
        # this process listens on the same path.
        self.socket_path = Path(tempfile.gettempdir()) / f"msp-pcscd-{os.getpid()}.comm"
        self.log_path = workdir / "pcscd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._saved_env: str | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        """Start pcscd, wait until its vpcd reader shows; raises ReaderError past the deadline."""
        pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not Path(pcscd).exists() or not VPCD_DRIVER.exists():
            raise ReaderError("pcscd and vsmartcard-vpcd must be installed (scripts/system-deps)")
        conf = self.workdir / "reader.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_NAME}"\nDEVICENAME /dev/null:{self.port}\n'
            f"LIBPATH {VPCD_DRIVER}\nCHANNELID {self.port}\n"
        )
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        listener.listen(32)
        fd = listener.fileno()
        # sd_listen_fds(): the socket must be fd 3 and LISTEN_PID the daemon's own pid;
        # `exec` keeps the shell's pid, so $$ is pcscd's pid (bash: dash cannot redirect fd >= 10).
        script = f'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --foreground -c "$1" 3<&{fd}'
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                ["/bin/bash", "-c", script, pcscd, str(conf)], pass_fds=(fd,),
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        listener.close()
        self._saved_env = os.environ.get(SOCKET_ENV)
        os.environ[SOCKET_ENV] = str(self.socket_path)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ReaderError(f"pcscd exited with {self._process.returncode}: "
                                  f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                ready = any(name.startswith(READER_NAME) for name in list_readers())
            except ReaderError:
                ready = False
            if ready:
                log.info("private pcscd ready, vpcd on port %d", self.port)
                return
            time.sleep(0.1)
        self.stop()
        raise ReaderError(f"pcscd showed no {READER_NAME!r} reader within {timeout_s} s")

    def stop(self) -> None:
        """Terminate pcscd (kill it after 5 s), remove its socket, restore the environment."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
        self.socket_path.unlink(missing_ok=True)
        if self._saved_env is None:
            os.environ.pop(SOCKET_ENV, None)
        else:
            os.environ[SOCKET_ENV] = self._saved_env

    def __enter__(self) -> PrivatePcscd:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

