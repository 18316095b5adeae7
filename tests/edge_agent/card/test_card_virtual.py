"""The JPKI and licence clients against the virtual card, in-process: every status-word path."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from edge_agent.card.apdu import ApduChannel, CommandApdu, raise_for_status
from edge_agent.card.errors import (
    CardFileNotFoundError,
    CardRemovedError,
    PinFormatError,
    PinLastTryError,
    PinLockedError,
    SecurityStatusError,
    UnsupportedInstructionError,
    WrongPinError,
)
from edge_agent.card.image import CardImage
from edge_agent.card.jpki import JpkiClient
from edge_agent.card.layout import JPKI_AID, LICENCE_AID
from edge_agent.card.licence import LicenceClient
from edge_agent.card.transport import InProcessTransport
from edge_agent.card.virtual import VirtualCard

from .conftest import PIN, card_with


def _jpki(card: VirtualCard) -> JpkiClient:
    transport = InProcessTransport(card)
    transport.connect()
    return JpkiClient(ApduChannel(transport))


def _verifies_sent(card: VirtualCard) -> int:
    return sum(1 for e in card.log if e.command.ins == 0x20 and e.command.data)


def test_reads_the_certificate_and_its_ca_without_a_pin(
    reader: InProcessTransport, image: CardImage
) -> None:
    jpki = JpkiClient(ApduChannel(reader))
    assert jpki.token() == b"JPKIAPICCTOKEN2"
    assert jpki.auth_certificate() == image.auth_certificate
    assert jpki.auth_ca_certificate() == image.auth_ca_certificate
    assert jpki.pin_tries_left() == 3


def test_signature_verifies_against_the_certificate(
    reader: InProcessTransport, image: CardImage
) -> None:
    jpki = JpkiClient(ApduChannel(reader))
    jpki.verify_pin(PIN)
    signature = jpki.sign_sha256(b"binding statement")
    key = x509.load_der_x509_certificate(image.auth_certificate).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and len(signature) == 256
    key.verify(signature, b"binding statement", padding.PKCS1v15(), hashes.SHA256())


def test_signing_without_the_pin_is_refused_by_the_card(reader: InProcessTransport) -> None:
    jpki = JpkiClient(ApduChannel(reader))
    jpki.select()
    with pytest.raises(SecurityStatusError) as caught:
        jpki.sign_sha256(b"x")
    assert caught.value.sw == 0x6982


def test_wrong_pin_reports_tries_left_and_the_counter_drops(card: VirtualCard) -> None:
    jpki = _jpki(card)
    with pytest.raises(WrongPinError) as caught:
        jpki.verify_pin("9999")
    assert caught.value.tries_left == 2
    assert card.tries_left(JPKI_AID) == 2
    assert jpki.pin_tries_left() == 2


def test_right_pin_resets_the_counter(card: VirtualCard) -> None:
    jpki = _jpki(card)
    with pytest.raises(WrongPinError):
        jpki.verify_pin("9999")
    jpki.verify_pin(PIN)
    assert card.tries_left(JPKI_AID) == 3


def test_one_try_left_is_never_spent(image: CardImage) -> None:
    card = card_with(image, jpki_tries_left=1)
    with pytest.raises(PinLastTryError, match="one try left"):
        _jpki(card).verify_pin(PIN)
    assert _verifies_sent(card) == 0
    assert card.tries_left(JPKI_AID) == 1


def test_locked_card_gets_no_verify(image: CardImage) -> None:
    card = card_with(image, jpki_tries_left=0)
    jpki = _jpki(card)
    assert jpki.pin_tries_left() == 0
    with pytest.raises(PinLockedError, match="locked"):
        jpki.verify_pin(PIN)
    assert _verifies_sent(card) == 0
    assert any(e.sw == 0x6983 for e in card.log)


def test_wrong_pin_on_the_second_last_try_leaves_one(image: CardImage) -> None:
    card = card_with(image, jpki_tries_left=2)
    jpki = _jpki(card)
    with pytest.raises(WrongPinError) as caught:
        jpki.verify_pin("0000")
    assert caught.value.tries_left == 1
    with pytest.raises(PinLastTryError):
        jpki.verify_pin(PIN)
    assert _verifies_sent(card) == 1


@pytest.mark.parametrize("pin", ["123", "12345", "12a4", "\uff11\uff12\uff13\uff14", ""])
def test_malformed_pin_sends_nothing(card: VirtualCard, pin: str) -> None:
    with pytest.raises(PinFormatError):
        _jpki(card).verify_pin(pin)
    assert _verifies_sent(card) == 0


def test_missing_ef_is_6a82(reader: InProcessTransport) -> None:
    channel = ApduChannel(reader)
    channel.select_aid(JPKI_AID, "select")
    with pytest.raises(CardFileNotFoundError) as caught:
        channel.select_ef(0x1234, "SELECT EF 1234")
    assert caught.value.sw == 0x6A82 and "EF 1234" in str(caught.value)


def test_missing_application_is_6a82(image: CardImage) -> None:
    card = VirtualCard(replace(image, licence=None))
    transport = InProcessTransport(card)
    transport.connect()
    with pytest.raises(CardFileNotFoundError, match="licence AP"):
        LicenceClient(ApduChannel(transport)).select()


@pytest.mark.parametrize(("cla", "ins", "sw"), [(0x00, 0xCA, 0x6D00), (0x0C, 0xA4, 0x6E00)])
def test_unknown_instruction_or_class(
    reader: InProcessTransport, cla: int, ins: int, sw: int
) -> None:
    response = ApduChannel(reader).transmit(CommandApdu(cla, ins, 0, 0, le=1))
    assert response.sw == sw
    with pytest.raises(UnsupportedInstructionError):
        raise_for_status(response, "GET DATA")


def test_malformed_apdu_gets_6700(card: VirtualCard) -> None:
    assert card.process(b"\x00\xa4") == b"\x67\x00"
    assert card.process(b"\x00\xa4\x04\x0c\x05\xd3") == b"\x67\x00"


def test_card_removed_mid_certificate_read(card: VirtualCard) -> None:
    transport = InProcessTransport(card)
    transport.connect()
    transport.remove_after(4)  # SELECT AP, SELECT EF, first READ, second READ, then gone
    with pytest.raises(CardRemovedError, match="left reader"):
        JpkiClient(ApduChannel(transport)).auth_certificate()
    assert sum(1 for e in card.log if e.command.ins == 0xB0) == 2
    assert not transport.card_present()


def test_no_card_in_the_reader() -> None:
    with pytest.raises(CardRemovedError, match="no card"):
        InProcessTransport(None).connect()


def test_licence_needs_its_pin_then_reads(reader: InProcessTransport) -> None:
    licence = LicenceClient(ApduChannel(reader))
    licence.select()
    with pytest.raises(SecurityStatusError):
        licence.read()
    assert licence.pin_tries_left() == 10
    licence.verify_pin(PIN)
    data = licence.read()
    assert data.expiry == date(2030, 1, 31) and data.categories == ("普通",)


def test_licence_wrong_pin_counts_down_from_ten(card: VirtualCard) -> None:
    transport = InProcessTransport(card)
    transport.connect()
    with pytest.raises(WrongPinError) as caught:
        LicenceClient(ApduChannel(transport)).verify_pin("0000")
    assert caught.value.tries_left == 9 and card.tries_left(LICENCE_AID) == 9


def test_power_cycle_forgets_the_pin_but_keeps_the_counter(card: VirtualCard) -> None:
    jpki = _jpki(card)
    with pytest.raises(WrongPinError):
        jpki.verify_pin("0000")
    jpki.verify_pin(PIN)
    card.power_on()
    jpki.select()
    with pytest.raises(SecurityStatusError):
        jpki.sign_sha256(b"x")


def test_log_masks_the_pin(card: VirtualCard) -> None:
    _jpki(card).verify_pin(PIN)
    verify = [e for e in card.log if e.command.ins == 0x20 and e.command.data]
    assert verify and all(e.command.data == b"****" for e in verify)
