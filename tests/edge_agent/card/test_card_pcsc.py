"""The real PC/SC path: pyscard → a private pcscd → vpcd → the virtual card over TCP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.card.apdu import ApduChannel
from edge_agent.card.errors import CardRemovedError, ReaderError, WrongPinError
from edge_agent.card.image import CardImage
from edge_agent.card.jpki import JpkiClient
from edge_agent.card.licence import LicenceClient
from edge_agent.card.pcsc import PcscTransport, list_readers
from edge_agent.card.pcscd import READER_NAME, PrivatePcscd
from edge_agent.card.transport import open_transport
from edge_agent.card.virtual import VirtualCard
from edge_agent.card.vpcd import VpcdCard

from .conftest import PIN


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    with PrivatePcscd(tmp_path_factory.mktemp("pcscd")) as daemon:
        yield daemon


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def inserted(pcscd: PrivatePcscd, image: CardImage) -> Iterator[tuple[VirtualCard, VpcdCard]]:
    card = VirtualCard(image)
    vpcd = VpcdCard(card, port=pcscd.port)
    vpcd.insert()
    probe = PcscTransport(READER_NAME)
    wait_for(probe.card_present, "the card to appear")
    yield card, vpcd
    vpcd.remove()
    wait_for(lambda: not probe.card_present(), "the card to leave")


def test_the_reader_is_listed(pcscd: PrivatePcscd) -> None:
    assert any(name.startswith(READER_NAME) for name in list_readers())


def test_read_verify_sign_through_pcscd(
    inserted: tuple[VirtualCard, VpcdCard], image: CardImage
) -> None:
    card, _ = inserted
    transport = open_transport("pcsc", READER_NAME)
    assert transport.connect() == bytes.fromhex("3BE000FF8131FE4514")
    channel = ApduChannel(transport)
    jpki = JpkiClient(channel)
    assert jpki.auth_certificate() == image.auth_certificate
    with pytest.raises(WrongPinError) as caught:
        LicenceClient(channel).verify_pin("0000")
    assert caught.value.tries_left == 9
    jpki.verify_pin(PIN)
    assert len(jpki.sign_sha256(b"statement")) == 256
    transport.disconnect()
    # every APDU went over PC/SC to the virtual card; the log proves the path
    assert [e.command.ins for e in card.log if e.command.ins == 0x2A] == [0x2A]


def test_removal_mid_session_raises_card_removed(inserted: tuple[VirtualCard, VpcdCard]) -> None:
    _, vpcd = inserted
    transport = PcscTransport(READER_NAME)
    transport.connect()
    jpki = JpkiClient(ApduChannel(transport))
    jpki.select()
    vpcd.remove()
    wait_for(lambda: not transport.card_present(), "the card to leave")
    with pytest.raises(CardRemovedError):
        jpki.auth_certificate()
    vpcd.insert()  # the fixture removes it again


def test_no_card_means_card_removed_error(pcscd: PrivatePcscd) -> None:
    transport = PcscTransport(READER_NAME)
    assert not transport.card_present()
    with pytest.raises(CardRemovedError, match="no card"):
        transport.connect()


def test_unknown_reader_is_named(pcscd: PrivatePcscd) -> None:
    with pytest.raises(ReaderError, match="no PC/SC reader named 'Nope'"):
        PcscTransport("Nope").connect()


def test_unknown_transport_kind() -> None:
    with pytest.raises(ReaderError, match="unknown card transport 'nfc'"):
        open_transport("nfc")


def test_no_pcsc_service_is_a_reader_error(tmp_path: Path) -> None:
    # libpcsclite fixes its socket path per process, hence a fresh interpreter
    code = (
        "from edge_agent.card.pcsc import list_readers\n"
        "from edge_agent.card.errors import ReaderError\n"
        "try:\n    list_readers()\nexcept ReaderError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "absent.comm")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "cannot reach the PC/SC service" in result.stdout
