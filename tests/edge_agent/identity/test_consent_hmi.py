"""The driver answers the operator's consent request on the HMI socket category by category,
and the login signs exactly what was accepted (the virtual card, the real card thread's
hook, the real PIN socket)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from edge_agent.card.image import CardImage
from edge_agent.card.transport import InProcessTransport
from edge_agent.card.virtual import VirtualCard
from edge_agent.identity.consent import ConsentRequest
from edge_agent.identity.errors import PinEntryError
from edge_agent.identity.pin_entry import SocketPinEntry
from edge_agent.identity.session import LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.identity.watcher import CardWatcher, SessionStarted
from edge_agent.service.driver import CardThread

from .conftest import PIN, VIN

REQUEST = ConsentRequest("acme", ("driving", "score", "location"), 30)


def hmi(path: Path, answers: dict[str, bytes], seen: list[dict[str, object]],
        count: int) -> threading.Thread:  # fmt: skip
    """An HMI answering ``count`` requests, each by its type."""

    def run() -> None:
        for _ in range(count):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(path))
                request = json.loads(conn.makefile("rb").readline())
                seen.append(request)
                conn.sendall(answers[str(request["type"])])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_login_signs_only_the_categories_the_driver_accepted(
    tmp_path: Path, image: CardImage, trust: TrustStore
) -> None:
    entry = SocketPinEntry(tmp_path / "pin.sock", timeout_s=10)
    try:
        manager = SessionManager(LoginConfig(VIN, "gw-0001", "car", trust), entry)
        watcher = CardWatcher(manager, InProcessTransport(VirtualCard(image)))
        CardThread(watcher, 0.1, REQUEST)  # hooks the consent question before each login
        seen: list[dict[str, object]] = []
        answers = {"consent_request": b'{"accept": ["location", "driving", "nonsense"]}\n',
                   "pin_request": json.dumps({"pin": PIN}).encode() + b"\n"}
        thread = hmi(entry.path, answers, seen, 3)  # consent, licence PIN, JPKI PIN
        event = watcher.poll()
        thread.join(5)
    finally:
        entry.close()
    assert isinstance(event, SessionStarted)
    (consent,) = event.session.start.statement.consents
    assert consent.recipient == "acme" and consent.categories == ("driving", "location")
    question = seen[0]
    assert question["type"] == "consent_request" and question["days"] == 30
    assert [c["id"] for c in question["categories"]] == ["driving", "score", "location"]  # type: ignore[index,union-attr]
    assert [s["type"] for s in seen[1:]] == ["pin_request", "pin_request"]


@pytest.mark.parametrize(("reply", "expected"), [
    (b'{"cancel": true}\n', ()), (b'{"accept": []}\n', ()), (b'{"accept": ["score"]}\n',
                                                             ("score",))])  # fmt: skip
def test_ask_consent_answers(tmp_path: Path, reply: bytes, expected: tuple[str, ...]) -> None:
    entry = SocketPinEntry(tmp_path / "pin.sock", timeout_s=10)
    try:
        thread = hmi(entry.path, {"consent_request": reply}, [], 1)
        assert entry.ask_consent("acme", 30, [("driving", "d"), ("score", "s")]) == expected
        thread.join(5)
    finally:
        entry.close()


def test_a_malformed_consent_answer_is_refused(tmp_path: Path) -> None:
    entry = SocketPinEntry(tmp_path / "pin.sock", timeout_s=10)
    try:
        hmi(entry.path, {"consent_request": b'{"accept": "driving"}\n'}, [], 1)
        with pytest.raises(PinEntryError, match="list of strings 'accept'"):
            entry.ask_consent("acme", 30, [("driving", "d")])
    finally:
        entry.close()
