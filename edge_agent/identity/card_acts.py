"""The person's own acts signed with their card after login: consent grants and revocations,
requests for their data, the succession to a new card.

Each act is a statement the card signs in RFC 8785 form (``msp_protocol.consent.
statement_bytes``, SHA-256, RSA PKCS#1 v1.5), as the binding statement of a login: the card's
certificate is read and checked against the trust anchors first (no PIN spent on a card that
would be refused), then the JPKI PIN is asked once and the card signs. The bodies built here
(``consent`` and ``request`` records) are checked against their schemas when made, like every
record body of the agent.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from msp_protocol import bodies
from msp_protocol import consent as cats
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import b64url
from msp_protocol.records import checked

from ..card.apdu import ApduChannel
from ..card.errors import CardFileNotFoundError, CardRemovedError
from ..card.jpki import JpkiClient
from ..card.layout import JPKI_AUTH_PIN_RULE, JPKI_TOKEN
from ..card.transport import CardTransport
from ..errors import CardError, ConfigError
from .binding import iso_utc
from .errors import BindingRefusedError, CertificateRejectedError, RefusalReason
from .pin_entry import PinEntry
from .session import Clock, utc_now, verify_pin_once
from .trust import TrustStore

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CardSignature:
    """What the card gave: its signature over the statement and its certificate (DER)."""

    signature: bytes
    certificate_der: bytes

    @property
    def certificate_sha256(self) -> str:
        """base64url SHA-256 of the certificate: how the registry knows the card."""
        return b64url(hashlib.sha256(self.certificate_der).digest())

    @property
    def signature_b64(self) -> str:
        """The signature as the record bodies carry it (standard base64)."""
        return base64.b64encode(self.signature).decode("ascii")


class CardSigner:
    """Signs statements with the card in a reader: certificate check, the JPKI PIN, one
    signature. Raises ``BindingRefusedError`` with the reason (as a refused login)."""

    def __init__(self, trust: TrustStore, pin_entry: PinEntry, clock: Clock = utc_now) -> None:
        self.trust = trust
        self.pin_entry = pin_entry
        self.clock = clock

    def certificate(self, transport: CardTransport) -> bytes:
        """Read the card's authentication certificate and check it (no PIN)."""
        return self._with_card(transport, self._checked)

    def sign(self, transport: CardTransport, message: bytes) -> CardSignature:
        """The card's signature over ``message`` after one JPKI PIN entry."""

        def act(jpki: JpkiClient) -> CardSignature:
            certificate = self._checked(jpki)
            verify_pin_once(self.pin_entry, jpki.verify_pin, jpki.pin_tries_left(),
                            JPKI_AUTH_PIN_RULE)  # fmt: skip
            return CardSignature(jpki.sign_sha256(message), certificate)

        return self._with_card(transport, act)

    def _checked(self, jpki: JpkiClient) -> bytes:
        try:
            token = jpki.token()
        except CardFileNotFoundError as exc:
            raise BindingRefusedError(RefusalReason.NOT_A_MY_NUMBER_CARD,
                                      "the card has no JPKI application") from exc
        if token != JPKI_TOKEN:
            raise BindingRefusedError(RefusalReason.NOT_A_MY_NUMBER_CARD,
                                      f"the card's JPKI token is {token!r}")  # fmt: skip
        certificate = jpki.auth_certificate()
        try:
            cas = [jpki.auth_ca_certificate()]
        except CardFileNotFoundError:
            cas = []
        try:
            self.trust.check(certificate, cas, self.clock())
        except CertificateRejectedError as exc:
            raise BindingRefusedError(RefusalReason(exc.problem.value), str(exc)) from exc
        return certificate

    @staticmethod
    def _with_card(transport: CardTransport, act: Callable[[JpkiClient], T]) -> T:
        try:
            transport.connect()
            return act(JpkiClient(ApduChannel(transport)))
        except CardRemovedError as exc:
            raise BindingRefusedError(RefusalReason.CARD_REMOVED,
                                      f"the card was removed: {exc}") from exc
        except CardError as exc:
            raise BindingRefusedError(RefusalReason.CARD_ERROR, f"the card failed: {exc}") from exc
        finally:
            transport.disconnect()


def nonce() -> str:
    """A fresh statement nonce (base64url of 16 random bytes)."""
    return b64url(secrets.token_bytes(16))


def grant_statement(recipient: str, categories: Sequence[str], days: float, *, device: str,
                    vin: str, now: datetime) -> bodies.ConsentStatement:  # fmt: skip
    """The statement of a grant of ``categories`` to ``recipient`` for ``days`` from ``now``;
    raises ``ConfigError`` for an unknown category or a duration out of (0, 3660] days."""
    chosen = _categories(categories)
    if not chosen:
        raise ConfigError("a grant needs at least one category")
    if not 0 < days <= 3660:
        raise ConfigError(f"--days {days:g}: not in (0, 3660]")
    return bodies.ConsentStatement(cats.GRANT, recipient, chosen,
                                   iso_utc(now + timedelta(days=days)), device, vin,
                                   iso_utc(now), nonce())  # fmt: skip


def revoke_statement(recipient: str, categories: Sequence[str], *, device: str, vin: str,
                     now: datetime) -> bodies.ConsentStatement:  # fmt: skip
    """The statement of a revocation of ``categories`` (none: all) of ``recipient``, in force
    from ``now``."""
    return bodies.ConsentStatement(cats.REVOKE, recipient, _categories(categories), None,
                                   device, vin, iso_utc(now), nonce())  # fmt: skip


def _categories(categories: Sequence[str]) -> tuple[str, ...]:
    try:
        return cats.parse_categories(categories)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None


def consent_body(statement: bodies.ConsentStatement, signed: CardSignature) -> bodies.CardConsent:
    """The ``consent`` record body, checked against its schema."""
    return checked(bodies.CardConsent(statement, signed.signature_b64, signed.certificate_sha256))


def request_statement(action: str, *, device: str, vin: str, now: datetime,
                      reply_key: bytes | None = None,
                      successor_certificate: bytes | None = None,
                      ) -> bodies.RequestStatement:  # fmt: skip
    """The statement of a request (``my_data``, ``export``, ``erase``, ``succeed``)."""
    successor = (None if successor_certificate is None
                 else base64.b64encode(successor_certificate).decode("ascii"))  # fmt: skip
    return bodies.RequestStatement(action, device, vin, iso_utc(now), nonce(),
                                   None if reply_key is None else b64url(reply_key),
                                   successor)  # fmt: skip


def request_body(statement: bodies.RequestStatement, signed: CardSignature,
                 successor: CardSignature | None = None) -> bodies.CardRequest:  # fmt: skip
    """The ``request`` record body, checked against its schema."""
    return checked(bodies.CardRequest(statement, signed.signature_b64,
                                      signed.certificate_sha256,
                                      None if successor is None else successor.signature_b64))
