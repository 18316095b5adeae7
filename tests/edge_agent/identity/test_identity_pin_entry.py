"""PIN entry over the local UNIX socket an HMI answers."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import tempfile
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


def test_socket_is_for_the_agents_user_and_group_only(entry: SocketPinEntry) -> None:
    info = entry.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_uid == os.geteuid() and info.st_gid == os.getegid()


def _connects_as(path: Path, uid: int, groups: list[int]) -> int:
    """Fork a child that drops to ``uid`` with supplementary ``groups`` and connects to the
    socket at ``path``; returns 0 if it connected, else the errno."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.setgroups(groups)
            os.setgid(NOBODY)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(path))
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_user_in_the_agents_group_connects_and_others_cannot() -> None:
    """The install guide's promise: the HMI may run as another user in the agent's group."""
    directory = Path(tempfile.mkdtemp(prefix="msp-pin-", dir="/tmp"))
    try:
        directory.chmod(0o755)  # open, so that only the socket's own mode decides
        entry = SocketPinEntry(directory / "pin.sock", timeout_s=1)
        try:
            assert _connects_as(entry.path, NOBODY, [os.getegid()]) == 0
            assert _connects_as(entry.path, NOBODY, []) == errno.EACCES
        finally:
            entry.close()
    finally:
        shutil.rmtree(directory)


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
