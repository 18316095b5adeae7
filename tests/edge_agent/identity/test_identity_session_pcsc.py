"""Driver sessions over the real PC/SC stack: login, removal → session.end, reinsertion →
a new session, with the virtual card behind pcscd and vpcd."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from edge_agent.card.image import CardImage
from edge_agent.card.layout import FORBIDDEN_AIDS
from edge_agent.card.pcsc import PcscTransport
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard
from edge_agent.identity.binding import EndReason, verify_binding
from edge_agent.identity.pin_entry import FixedPinEntry
from edge_agent.identity.session import LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.identity.watcher import CardWatcher, SessionEnded, SessionStarted, WatchEvent

from .conftest import CONSENTS, PIN, VIN


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


def next_event(watcher: CardWatcher, timeout_s: float = 10.0) -> WatchEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = watcher.poll()
        if event is not None:
            return event
        time.sleep(0.05)
    raise AssertionError("the watcher saw nothing happen")


def test_login_removal_reinsertion(
    pcscd: PrivatePcscd, image: CardImage, trust: TrustStore
) -> None:
    card = VirtualCard(image)
    vpcd = VpcdCard(card, port=pcscd.port)
    config = LoginConfig(VIN, "gw-0001", "car", trust, CONSENTS)
    watcher = CardWatcher(SessionManager(config, FixedPinEntry(PIN)), PcscTransport(READER_NAME))
    assert watcher.poll() is None
    try:
        vpcd.insert()
        started = next_event(watcher)
        assert isinstance(started, SessionStarted)
        verify_binding(started.session.start, image.auth_certificate)

        vpcd.remove()
        ended = next_event(watcher)
        assert isinstance(ended, SessionEnded)
        assert ended.body.reason is EndReason.CARD_REMOVED
        assert ended.body.session == started.session.id

        vpcd.insert()
        again = next_event(watcher)
        assert isinstance(again, SessionStarted)
        assert again.session.id != started.session.id
        assert again.session.start.card_certificate is None
        verify_binding(again.session.start, image.auth_certificate)
    finally:
        watcher.transport.disconnect()
        vpcd.remove()
    signatures = [e for e in card.log if e.command.ins == 0x2A]
    assert len(signatures) == 2 and all(e.sw == 0x9000 for e in signatures)
    assert not FORBIDDEN_AIDS.intersection(card.selected_aids())
