"""sd_notify without a dependency: datagrams to a path or an abstract socket, the watchdog
interval from WATCHDOG_USEC, and silence outside systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.sdnotify import Notifier


def listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    address = str(tmp_path / "notify")
    sock = listener(address)
    yield address, sock
    sock.close()


def test_ready_watchdog_stopping_reach_a_path_socket(path_socket: tuple[str, socket.socket]):
    address, sock = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready("up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_abstract_socket_with_a_leading_at() -> None:
    name = f"msp-test-{uuid.uuid4().hex}"
    sock = listener("\0" + name)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval_s is None


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.watchdog() is False


def test_unsupported_address_disables_notification() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], interval: float | None):
    assert Notifier(env).watchdog_interval_s == interval


def test_a_listener_that_stops_reading_never_blocks_the_agent(
    path_socket: tuple[str, socket.socket],
) -> None:
    address, sock = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    sent = [notifier.watchdog() for _ in range(2000)]  # far beyond the datagram queue
    assert sent[0] is True and sent[-1] is False
    assert sock.recv(4096) == b"WATCHDOG=1"
