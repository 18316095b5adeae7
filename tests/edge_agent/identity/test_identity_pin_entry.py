"""PIN entry over the local UNIX socket an HMI answers."""

from __future__ import annotations

import json
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.identity.errors import PinEntryError
from edge_agent.identity.pin_entry import FixedPinEntry, PinRequest, SocketPinEntry

REQUEST = PinRequest("JPKI user-authentication PIN", 4, 3)


@pytest.fixture
def entry(tmp_path: Path) -> Iterator[SocketPinEntry]:
    pin_entry = SocketPinEntry(tmp_path / "pin.sock", timeout_s=10)
    yield pin_entry
    pin_entry.close()


def hmi(path: Path, reply: bytes, seen: list[dict[str, object]]) -> threading.Thread:
    """An HMI that reads the request and sends ``reply``."""

    def run() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            seen.append(json.loads(conn.makefile("rb").readline()))
            conn.sendall(reply)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_hmi_answers_a_pin(entry: SocketPinEntry) -> None:
    seen: list[dict[str, object]] = []
    thread = hmi(entry.path, b'{"pin": "4321"}\n', seen)
    assert entry.request_pin(REQUEST) == "4321"
    thread.join(5)
    assert seen == [
        {"type": "pin_request", "purpose": REQUEST.purpose, "digits": 4, "tries_left": 3}
    ]


def test_socket_is_owner_only(entry: SocketPinEntry) -> None:
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b'{"cancel": true}\n', "cancelled"),
        (b"1234\n", "not a JSON object"),
        (b"not json\n", "not JSON"),
        (b"[1]\n", "not a JSON object"),
        (b'{"pin": 1234}\n', "no string field 'pin'"),
        (b"", "not JSON"),
        (b"x" * 600, "exceeds 512 bytes"),
    ],
)
def test_bad_or_cancelled_replies(entry: SocketPinEntry, reply: bytes, message: str) -> None:
    thread = hmi(entry.path, reply, [])
    with pytest.raises(PinEntryError, match=message):
        entry.request_pin(REQUEST)
    thread.join(5)


def test_no_hmi_times_out(tmp_path: Path) -> None:
    pin_entry = SocketPinEntry(tmp_path / "pin.sock", timeout_s=0.2)
    try:
        with pytest.raises(PinEntryError, match="no PIN from the HMI"):
            pin_entry.request_pin(REQUEST)
    finally:
        pin_entry.close()
    assert not (tmp_path / "pin.sock").exists()


def test_fixed_pin_entry() -> None:
    assert FixedPinEntry("0007").request_pin(REQUEST) == "0007"
