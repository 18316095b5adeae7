"""Driver sessions: the login that binds a card holder to this vehicle, and its end.

Login order spends no PIN before it must: read and check the certificate (no PIN), then the
licence PIN and licence check, then the JPKI PIN and the card's signature. Any failure
raises BindingRefusedError with a specific reason and makes no session.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from msp_protocol.jws import b64url

from ..card.apdu import ApduChannel
from ..card.errors import (
    CardFileNotFoundError,
    CardRemovedError,
    PinError,
    PinFormatError,
    PinLastTryError,
    PinLockedError,
    WrongPinError,
)
from ..card.jpki import JpkiClient
from ..card.layout import JPKI_AUTH_PIN_RULE, JPKI_TOKEN, LICENCE_PIN_RULE, PinRule
from ..card.licence import LicenceClient
from ..card.pin import refuse_unsafe
from ..card.transport import CardTransport
from ..errors import CardError
from .binding import (
    BindingStatement,
    Consent,
    EndReason,
    LicenceClaim,
    SessionEndBody,
    SessionStartBody,
    iso_utc,
)
from .errors import (
    BindingRefusedError,
    CertificateRejectedError,
    LicenceRefusedError,
    PinEntryError,
    RefusalReason,
)
from .licence_policy import check_licence, check_vehicle_class
from .pin_entry import PinEntry, PinRequest
from .trust import TrustStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, UTC (sessions are stamped with real time, not the CAN clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LoginConfig:
    """What a login binds to: this vehicle and gateway, the class of vehicle, the consents
    offered for signing, and the trust anchors/CRLs for the card's certificate."""

    vin: str
    device: str
    vehicle_class: str
    trust: TrustStore
    consents: tuple[Consent, ...] = ()
    max_session_s: float | None = None

    def __post_init__(self) -> None:
        check_vehicle_class(self.vehicle_class)


@dataclass(frozen=True, slots=True)
class DriverSession:
    """A live binding: its start body, when it began, and the certificate's fingerprint."""

    start: SessionStartBody
    started: datetime

    @property
    def id(self) -> str:
        """The session id the records carry."""
        return self.start.statement.session


_PIN_REASONS: dict[type[PinError], RefusalReason] = {
    PinLastTryError: RefusalReason.PIN_LAST_TRY,
    PinLockedError: RefusalReason.PIN_LOCKED,
}


def _refused(reason: RefusalReason, message: str, tries_left: int | None = None
             ) -> BindingRefusedError:
    """Log a refusal and return the error to raise."""
    log.warning("login refused (%s): %s", reason.value, message)
    return BindingRefusedError(reason, message, tries_left)


def verify_pin_once(pin_entry: PinEntry, verify: Callable[[str], None], tries_left: int,
                    rule: PinRule) -> None:  # fmt: skip
    """Ask for one PIN and VERIFY it once; a locked PIN or a last try is refused before the
    driver is asked. Raises ``BindingRefusedError`` naming the PIN problem."""
    try:
        refuse_unsafe(tries_left, rule)
        pin = pin_entry.request_pin(PinRequest(rule.label, rule.digits, tries_left))
        verify(pin)
    except PinEntryError as exc:
        raise _refused(RefusalReason.PIN_ENTRY, str(exc), tries_left) from exc
    except WrongPinError as exc:
        raise _refused(RefusalReason.PIN_WRONG, str(exc), exc.tries_left) from exc
    except PinFormatError as exc:
        raise _refused(RefusalReason.PIN_FORMAT, str(exc), tries_left) from exc
    except (PinLastTryError, PinLockedError) as exc:
        raise _refused(_PIN_REASONS[type(exc)], str(exc), exc.tries_left) from exc


class SessionManager:
    """Runs logins on a card transport and ends sessions; holds at most one session.

    ``sent_certificates`` holds fingerprints the registry already has: their
    ``session.start`` carries ``card_certificate: null``.
    """

    def __init__(self, config: LoginConfig, pin_entry: PinEntry, clock: Clock = utc_now,
                 sent_certificates: set[bytes] | None = None) -> None:
        self.config = config
        self.pin_entry = pin_entry
        self.clock = clock
        self.sent_certificates = sent_certificates if sent_certificates is not None else set()
        self.session: DriverSession | None = None

    def login(self, transport: CardTransport) -> DriverSession:
        """Bind the card in ``transport``'s reader to this vehicle, or raise
        BindingRefusedError. A session already open is ended (logout) first."""
        if self.session is not None:
            self.end(EndReason.LOGOUT)
        try:
            transport.connect()
            session = self._login(ApduChannel(transport))
        except CardRemovedError as exc:
            transport.disconnect()
            raise _refused(RefusalReason.CARD_REMOVED, f"the card was removed: {exc}") from exc
        except BindingRefusedError:
            transport.disconnect()
            raise
        except CardError as exc:
            transport.disconnect()
            raise _refused(RefusalReason.CARD_ERROR, f"the card failed: {exc}") from exc
        self.session = session
        self.sent_certificates.add(session.start.card_certificate_sha256)
        log.info("driver session %s started on %s", session.id, self.config.vin)
        return session

    def _login(self, channel: ApduChannel) -> DriverSession:
        now = self.clock()
        jpki = JpkiClient(channel)
        try:
            token = jpki.token()
        except CardFileNotFoundError as exc:
            raise _refused(RefusalReason.NOT_A_MY_NUMBER_CARD,
                           "the card has no JPKI application") from exc
        if token != JPKI_TOKEN:
            raise _refused(RefusalReason.NOT_A_MY_NUMBER_CARD,
                           f"the card's JPKI token is {token!r}, not a My Number Card")
        certificate = jpki.auth_certificate()
        try:
            card_cas = [jpki.auth_ca_certificate()]
        except CardFileNotFoundError:
            card_cas = []
        try:
            self.config.trust.check(certificate, card_cas, now)
        except CertificateRejectedError as exc:
            raise _refused(RefusalReason(exc.problem.value), str(exc)) from exc

        licence_client = LicenceClient(channel)
        try:
            licence_tries = licence_client.pin_tries_left()
        except CardFileNotFoundError as exc:
            raise _refused(RefusalReason.LICENCE_MISSING,
                           "the card carries no driving licence") from exc
        self._verify(licence_client.verify_pin, licence_tries, LICENCE_PIN_RULE)
        licence = licence_client.read()
        try:
            check_licence(licence, self.config.vehicle_class, now)
        except LicenceRefusedError as exc:
            raise _refused(RefusalReason(exc.problem.value), str(exc)) from exc

        self._verify(jpki.verify_pin, jpki.pin_tries_left(), JPKI_AUTH_PIN_RULE)
        started = self.clock()  # after the PINs: the driver may have taken a while
        statement = BindingStatement(
            session=str(uuid.uuid4()), vin=self.config.vin, device=self.config.device,
            started_at=iso_utc(started), nonce=b64url(secrets.token_bytes(16)),
            vehicle_class=self.config.vehicle_class,
            licence=LicenceClaim(licence.expiry, licence.categories),
            consents=self.config.consents,
        )
        signature = jpki.sign_sha256(statement.canonical())
        fingerprint = hashlib.sha256(certificate).digest()
        already_sent = fingerprint in self.sent_certificates
        start = SessionStartBody(statement, signature, None if already_sent else certificate,
                                 fingerprint)
        return DriverSession(start, started)

    def _verify(self, verify: Callable[[str], None], tries_left: int, rule: PinRule) -> None:
        verify_pin_once(self.pin_entry, verify, tries_left, rule)

    def end(self, reason: EndReason) -> SessionEndBody | None:
        """End the open session (if any) and return its ``session.end`` body."""
        session, self.session = self.session, None
        if session is None:
            return None
        now = self.clock()
        body = SessionEndBody(session.id, reason, session.start.statement.started_at,
                              iso_utc(now), round((now - session.started).total_seconds(), 3))
        log.info("driver session %s ended: %s", session.id, reason.value)
        return body
