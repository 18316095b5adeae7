"""Login, refusals, session end and the card watcher, through the in-process transport."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from edge_agent.card.apdu import ApduChannel
from edge_agent.card.image import CardImage
from edge_agent.card.issuer import TestIssuer
from edge_agent.card.layout import FORBIDDEN_AIDS, TEXT_AP_AID
from edge_agent.card.licence import LicenceData
from edge_agent.card.transport import InProcessTransport
from edge_agent.card.virtual import VirtualCard
from edge_agent.identity.binding import EndReason, verify_binding
from edge_agent.identity.errors import BindingRefusedError, PinEntryError, RefusalReason
from edge_agent.identity.pin_entry import FixedPinEntry, PinRequest
from edge_agent.identity.session import LoginConfig, SessionManager
from edge_agent.identity.trust import TrustStore
from edge_agent.identity.watcher import CardWatcher, LoginRefused, SessionEnded, SessionStarted

from .conftest import CONSENTS, PIN, VIN, ManualClock


class CountingPinEntry:
    """Returns ``pin`` and remembers every request (or raises when ``pin`` is None)."""

    def __init__(self, pin: str | None) -> None:
        self.pin = pin
        self.requests: list[PinRequest] = []

    def request_pin(self, request: PinRequest) -> str:
        self.requests.append(request)
        if self.pin is None:
            raise PinEntryError("the driver cancelled PIN entry on the HMI")
        return self.pin


def manager(
    trust: TrustStore,
    pin: str | None = PIN,
    vehicle_class: str = "car",
    clock: ManualClock | None = None,
    max_session_s: float | None = None,
) -> SessionManager:
    config = LoginConfig(VIN, "gw-0001", vehicle_class, trust, CONSENTS, max_session_s)
    return SessionManager(config, CountingPinEntry(pin), clock or ManualClock())


def in_reader(card: VirtualCard) -> InProcessTransport:
    return InProcessTransport(card, "test reader")


def assert_no_my_number_access(card: VirtualCard) -> None:
    assert card.log, "the card saw no APDUs at all"
    assert not FORBIDDEN_AIDS.intersection(card.selected_aids())


def test_login_produces_a_binding_that_verifies_independently(
    image: CardImage, trust: TrustStore
) -> None:
    card = VirtualCard(image)
    session = manager(trust).login(in_reader(card))
    body = session.start.to_json()
    assert set(body) == {
        "statement",
        "card_signature",
        "card_certificate",
        "card_certificate_sha256",
    }
    statement = body["statement"]
    assert isinstance(statement, dict)
    assert set(statement) == {
        "session",
        "vin",
        "device",
        "started_at",
        "nonce",
        "vehicle_class",
        "licence",
        "consents",
    }
    assert statement["vin"] == VIN and statement["vehicle_class"] == "car"
    assert statement["licence"] == {"expiry": "2030-01-31", "categories": ["普通"]}
    assert statement["consents"] == [
        {
            "recipient": "fleet-acme",
            "categories": ["driving", "score"],
            "until": "2027-03-31T00:00:00.000Z",
        }
    ]
    # Independent check: plain json (no floats in the statement, so sorted compact JSON is
    # RFC 8785) and plain cryptography.
    signed = json.dumps(
        statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    cert_der = base64.b64decode(str(body["card_certificate"]))
    assert cert_der == image.auth_certificate
    key = x509.load_der_x509_certificate(cert_der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(
        base64.b64decode(str(body["card_signature"])), signed, padding.PKCS1v15(), hashes.SHA256()
    )
    fingerprint = base64.urlsafe_b64encode(hashlib.sha256(cert_der).digest()).rstrip(b"=")
    assert body["card_certificate_sha256"] == fingerprint.decode()
    verify_binding(session.start, cert_der)
    assert_no_my_number_access(card)


def test_a_tampered_statement_does_not_verify(image: CardImage, trust: TrustStore) -> None:
    session = manager(trust).login(in_reader(VirtualCard(image)))
    forged = replace(session.start, statement=replace(session.start.statement, vin="OTHER"))
    with pytest.raises(Exception, match="signature over the binding statement is invalid"):
        verify_binding(forged, image.auth_certificate)


def test_the_certificate_is_sent_once(image: CardImage, trust: TrustStore) -> None:
    mgr = manager(trust)
    first = mgr.login(in_reader(VirtualCard(image)))
    second = mgr.login(in_reader(VirtualCard(image)))
    assert first.start.card_certificate == image.auth_certificate
    assert second.start.card_certificate is None
    assert second.start.to_json()["card_certificate"] is None
    assert first.start.card_certificate_sha256 == second.start.card_certificate_sha256
    assert first.id != second.id and first.start.statement.nonce != second.start.statement.nonce


def _refusal(
    image: CardImage,
    trust: TrustStore,
    *,
    pin: str | None = PIN,
    vehicle_class: str = "car",
    transport: InProcessTransport | None = None,
) -> tuple[BindingRefusedError, VirtualCard, SessionManager]:
    card = VirtualCard(image)
    mgr = manager(trust, pin, vehicle_class)
    with pytest.raises(BindingRefusedError) as caught:
        mgr.login(transport or in_reader(card))
    assert mgr.session is None
    assert not any(e.command.ins == 0x2A for e in card.log), "the card signed a refused login"
    assert not FORBIDDEN_AIDS.intersection(card.selected_aids())
    return caught.value, card, mgr


@pytest.mark.parametrize(
    ("changes", "reason", "tries_left", "message"),
    [
        (
            {"licence": LicenceData(date(2020, 1, 31), ("普通",))},
            RefusalReason.LICENCE_EXPIRED,
            None,
            "expired on 2020-01-31",
        ),
        (
            {"licence": LicenceData(date(2030, 1, 31), ("原付",))},
            RefusalReason.LICENCE_CATEGORY,
            None,
            "do not cover a car",
        ),
        ({"licence": None}, RefusalReason.LICENCE_MISSING, None, "no driving licence"),
        ({"jpki_tries_left": 0}, RefusalReason.PIN_LOCKED, 0, "locked"),
        ({"jpki_tries_left": 1}, RefusalReason.PIN_LAST_TRY, 1, "one try left"),
        ({"licence_tries_left": 1}, RefusalReason.PIN_LAST_TRY, 1, "driving-licence PIN"),
        ({"licence_tries_left": 0}, RefusalReason.PIN_LOCKED, 0, "driving-licence PIN"),
    ],
)
def test_refusals_by_card_content(
    image: CardImage,
    trust: TrustStore,
    changes: dict[str, object],
    reason: RefusalReason,
    tries_left: int | None,
    message: str,
) -> None:
    error, _, _ = _refusal(replace(image, **changes), trust)  # type: ignore[arg-type]
    assert error.reason is reason and error.tries_left == tries_left
    assert message in str(error)


def test_wrong_pin_reports_tries_left(image: CardImage, trust: TrustStore) -> None:
    error, _, _ = _refusal(replace(image, licence=None), trust, pin="0000")
    assert error.reason is RefusalReason.LICENCE_MISSING  # licence is checked before any PIN
    error, _, mgr = _refusal(image, trust, pin="0000")
    assert error.reason is RefusalReason.PIN_WRONG and error.tries_left == 9  # licence PIN
    assert isinstance(mgr.pin_entry, CountingPinEntry) and len(mgr.pin_entry.requests) == 1


def test_wrong_jpki_pin(image: CardImage, trust: TrustStore) -> None:
    licence_pin_differs = replace(image, licence_pin="5678")
    card = VirtualCard(licence_pin_differs)

    class TwoPins:
        def request_pin(self, request: PinRequest) -> str:
            return "5678" if "licence" in request.purpose else "0000"

    mgr = SessionManager(LoginConfig(VIN, "gw-0001", "car", trust), TwoPins())
    with pytest.raises(BindingRefusedError) as caught:
        mgr.login(in_reader(card))
    assert caught.value.reason is RefusalReason.PIN_WRONG and caught.value.tries_left == 2
    assert "JPKI" in str(caught.value)


@pytest.mark.parametrize(
    ("pin", "reason"), [(None, RefusalReason.PIN_ENTRY), ("12", RefusalReason.PIN_FORMAT)]
)
def test_pin_entry_problems(
    image: CardImage, trust: TrustStore, pin: str | None, reason: RefusalReason
) -> None:
    error, card, _ = _refusal(image, trust, pin=pin)
    assert error.reason is reason
    assert not any(e.command.ins == 0x20 and e.command.data for e in card.log)


def test_truck_needs_a_truck_category(image: CardImage, trust: TrustStore) -> None:
    error, _, _ = _refusal(image, trust, vehicle_class="truck_medium")
    assert error.reason is RefusalReason.LICENCE_CATEGORY


@pytest.mark.parametrize(
    ("store", "reason"),
    [
        ("other", RefusalReason.CERTIFICATE_UNTRUSTED),
        ("revoked", RefusalReason.CERTIFICATE_REVOKED),
    ],
)
def test_certificate_refusals_happen_before_any_pin(
    image: CardImage,
    issuer: TestIssuer,
    other_issuer: TestIssuer,
    store: str,
    reason: RefusalReason,
) -> None:
    serial = x509.load_der_x509_certificate(image.auth_certificate).serial_number
    trust = (
        TrustStore((other_issuer.certificate,))
        if store == "other"
        else TrustStore((issuer.certificate,), (issuer.crl([serial]),))
    )
    error, card, mgr = _refusal(image, trust)
    assert error.reason is reason
    assert isinstance(mgr.pin_entry, CountingPinEntry) and mgr.pin_entry.requests == []
    assert not any(e.command.ins == 0x20 for e in card.log)


def test_expired_certificate(issuer: TestIssuer, image: CardImage, trust: TrustStore) -> None:
    card = VirtualCard(image)
    clock = ManualClock()
    clock.advance(timedelta(days=6 * 365).total_seconds())
    mgr = manager(trust, clock=clock)
    with pytest.raises(BindingRefusedError) as caught:
        mgr.login(in_reader(card))
    assert caught.value.reason is RefusalReason.CERTIFICATE_EXPIRED


def test_card_removed_mid_login(image: CardImage, trust: TrustStore) -> None:
    card = VirtualCard(image)
    transport = in_reader(card)
    transport.remove_after(6)
    error, _, _ = _refusal(image, trust, transport=transport)
    assert error.reason is RefusalReason.CARD_REMOVED


class ForeignCard:
    """A card that is not a My Number Card: every command gets the same status word."""

    def __init__(self, sw: bytes) -> None:
        self.sw = sw

    def power_on(self) -> bytes:
        return b"\x3b\x00"

    def atr(self) -> bytes:
        return b"\x3b\x00"

    def process(self, apdu: bytes) -> bytes:
        return self.sw


@pytest.mark.parametrize(
    ("sw", "reason"),
    [(b"\x6a\x82", RefusalReason.NOT_A_MY_NUMBER_CARD), (b"\x6f\x00", RefusalReason.CARD_ERROR)],
)
def test_other_cards_are_refused(trust: TrustStore, sw: bytes, reason: RefusalReason) -> None:
    mgr = manager(trust)
    with pytest.raises(BindingRefusedError) as caught:
        mgr.login(InProcessTransport(ForeignCard(sw)))
    assert caught.value.reason is reason and mgr.session is None


def test_the_virtual_card_would_log_a_forbidden_select(image: CardImage) -> None:
    """The APDU-log check above can fail: a selection of the card-text AP shows up."""
    card = VirtualCard(image)
    transport = in_reader(card)
    transport.connect()
    ApduChannel(transport).select_aid(TEXT_AP_AID, "SELECT card-text AP")
    assert FORBIDDEN_AIDS.intersection(card.selected_aids()) == {TEXT_AP_AID}


def test_session_end_body(image: CardImage, trust: TrustStore) -> None:
    clock = ManualClock()
    mgr = manager(trust, clock=clock)
    session = mgr.login(in_reader(VirtualCard(image)))
    clock.advance(90.5)
    body = mgr.end(EndReason.IGNITION_OFF)
    assert body is not None and mgr.session is None
    assert body.to_json() == {
        "session": session.id,
        "reason": "ignition_off",
        "started_at": session.start.statement.started_at,
        "ended_at": body.ended_at,
        "duration_s": 90.5,
    }
    assert mgr.end(EndReason.TIMEOUT) is None


def test_watcher_insert_remove_reinsert(image: CardImage, trust: TrustStore) -> None:
    card = VirtualCard(image)
    transport = InProcessTransport(None)
    watcher = CardWatcher(manager(trust), transport)
    assert watcher.poll() is None
    transport.insert(card)
    started = watcher.poll()
    assert isinstance(started, SessionStarted)
    assert watcher.poll() is None
    transport.remove()
    ended = watcher.poll()
    assert isinstance(ended, SessionEnded)
    assert ended.body.reason is EndReason.CARD_REMOVED
    assert ended.body.session == started.session.id
    transport.insert(card)
    again = watcher.poll()
    assert isinstance(again, SessionStarted) and again.session.id != started.session.id
    assert again.session.start.card_certificate is None
    assert_no_my_number_access(card)


def test_a_refused_card_is_not_asked_again_until_reinserted(
    image: CardImage, trust: TrustStore
) -> None:
    card = VirtualCard(image)
    transport = InProcessTransport(card)
    mgr = manager(trust, pin="0000")
    watcher = CardWatcher(mgr, transport)
    refused = watcher.poll()
    assert isinstance(refused, LoginRefused)
    assert refused.reason is RefusalReason.PIN_WRONG and refused.tries_left == 9
    assert watcher.poll() is None and watcher.poll() is None
    assert isinstance(mgr.pin_entry, CountingPinEntry) and len(mgr.pin_entry.requests) == 1
    transport.remove()
    assert watcher.poll() is None
    transport.insert(card)
    assert isinstance(watcher.poll(), LoginRefused)
    assert len(mgr.pin_entry.requests) == 2


def test_watcher_timeout_and_ignition_off(image: CardImage, trust: TrustStore) -> None:
    clock = ManualClock()
    transport = InProcessTransport(VirtualCard(image))
    watcher = CardWatcher(manager(trust, clock=clock, max_session_s=3600), transport)
    assert isinstance(watcher.poll(), SessionStarted)
    clock.advance(3599)
    assert watcher.poll() is None
    clock.advance(1)
    ended = watcher.poll()
    assert isinstance(ended, SessionEnded) and ended.body.reason is EndReason.TIMEOUT
    assert watcher.poll() is None  # the card must come out and go back in
    transport.remove()
    watcher.poll()
    transport.insert(VirtualCard(image))
    assert isinstance(watcher.poll(), SessionStarted)
    off = watcher.ignition_off()
    assert off is not None and off.body.reason is EndReason.IGNITION_OFF
    assert watcher.ignition_off() is None


def test_login_config_rejects_unknown_vehicle_class(trust: TrustStore) -> None:
    with pytest.raises(ValueError, match="unknown vehicle class"):
        LoginConfig(VIN, "gw-0001", "spaceship", trust)


def test_fixed_pin_login(image: CardImage, trust: TrustStore) -> None:
    mgr = SessionManager(LoginConfig(VIN, "gw-0001", "car", trust), FixedPinEntry(PIN))
    assert mgr.login(in_reader(VirtualCard(image))).start.statement.vin == VIN
