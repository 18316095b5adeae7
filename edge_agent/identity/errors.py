"""Errors of driver identity, rooted at ``edge_agent.errors.AgentError``.

IdentityError
 ├── CertificateRejectedError  the card's certificate fails an offline check (see ``problem``)
 ├── LicenceRefusedError       the licence is expired or lacks a category for the vehicle class
 ├── PinEntryError             no PIN came back: cancelled, timed out, or the HMI answered garbage
 └── BindingRefusedError       no driver session: ``reason`` (a RefusalReason) and the tries left
"""

from __future__ import annotations

from enum import Enum

from ..errors import AgentError


class IdentityError(AgentError):
    """Root of the identity errors."""


class CertificateProblem(Enum):
    """Why a certificate was rejected; each check has its own value."""

    MALFORMED = "certificate_malformed"
    UNTRUSTED = "certificate_untrusted"
    EXPIRED = "certificate_expired"
    NOT_YET_VALID = "certificate_not_yet_valid"
    KEY_USAGE = "certificate_key_usage"
    REVOKED = "certificate_revoked"


class CertificateRejectedError(IdentityError):
    """The certificate failed one offline check, named by ``problem``."""

    def __init__(self, problem: CertificateProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class LicenceProblem(Enum):
    """Why the licence does not allow driving this vehicle."""

    MISSING = "licence_missing"
    EXPIRED = "licence_expired"
    CATEGORY = "licence_category"


class LicenceRefusedError(IdentityError):
    """The licence fails the check for this vehicle, named by ``problem``."""

    def __init__(self, problem: LicenceProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class PinEntryError(IdentityError):
    """The PIN entry gave no usable PIN (cancelled, timed out, malformed reply)."""


class RefusalReason(Enum):
    """Every reason a login ends without a driver session (the ``reason`` in --json output)."""

    CARD_REMOVED = "card_removed"
    CARD_ERROR = "card_error"
    NOT_A_MY_NUMBER_CARD = "not_a_my_number_card"
    CERTIFICATE_MALFORMED = "certificate_malformed"
    CERTIFICATE_UNTRUSTED = "certificate_untrusted"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    CERTIFICATE_KEY_USAGE = "certificate_key_usage"
    CERTIFICATE_REVOKED = "certificate_revoked"
    LICENCE_MISSING = "licence_missing"
    LICENCE_EXPIRED = "licence_expired"
    LICENCE_CATEGORY = "licence_category"
    PIN_FORMAT = "pin_format"
    PIN_WRONG = "pin_wrong"
    PIN_LAST_TRY = "pin_last_try"
    PIN_LOCKED = "pin_locked"
    PIN_ENTRY = "pin_entry"


class BindingRefusedError(IdentityError):
    """No driver session was made; ``reason`` says why, ``tries_left`` is set for PIN refusals."""

    def __init__(self, reason: RefusalReason, message: str, tries_left: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.tries_left = tries_left
