"""systemd notifications without a dependency: READY, WATCHDOG, STOPPING, STATUS over
``$NOTIFY_SOCKET`` (a path, or an abstract socket written with a leading ``@``).

Outside systemd (no ``NOTIFY_SOCKET``) every call is a cheap no-op, so the agent runs the
same from a shell. See sd_notify(3) and sd_watchdog_enabled(3).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]  # abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # vsock and other forms are not used on a gateway


class Notifier:
    """Sends state lines to the service manager; a failed send is logged, never raised (the
    agent must not stop because systemd went away)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%r: unsupported address, not notifying systemd", raw)
        self.watchdog_interval_s = _watchdog_interval(env)
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True if it was sent."""
        if self._sock is None or self.address is None:
            return False
        try:
            # Never wait: a listener that stopped reading must not stall the main loop.
            self._sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
        except BlockingIOError:
            log.debug("sd_notify %s dropped: the listener's queue is full", lines[0])
            return False
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", lines[0] if lines else "", exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """``READY=1``: start-up is complete."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is alive."""
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        """``RELOADING=1``: the configuration is being re-read."""
        return self.notify("RELOADING=1")

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """``STATUS=...``: a one-line state shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or None when the watchdog is off or meant for
    another process (``WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number: watchdog off", usec)
        return None
    return value / 2_000_000 if value > 0 else None
