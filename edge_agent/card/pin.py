"""The PIN exchange shared by the card's applications: tries-left query, then one VERIFY.

The agent never retries a PIN on its own: a wrong PIN reports the tries left, and a PIN with
one try left (or locked) is refused before anything is sent, so the agent cannot lock a card.
"""

from __future__ import annotations

import logging

from .apdu import SW_OK, SW_PIN_BLOCKED, ApduChannel, CommandApdu, raise_for_status
from .errors import PinFormatError, PinLastTryError, PinLockedError, WrongPinError
from .layout import PinRule

log = logging.getLogger(__name__)


def tries_left(channel: ApduChannel, p2: int, rule: PinRule) -> int:
    """Ask the card how many tries the PIN has left (VERIFY with no data; 63 Cx → x)."""
    response = channel.transmit(CommandApdu(0x00, 0x20, 0x00, p2))
    if response.sw == SW_PIN_BLOCKED:
        return 0
    if response.sw >> 4 == 0x63C:
        return response.sw & 0x0F
    if response.sw == SW_OK:  # already verified in this card session
        return rule.max_tries
    raise_for_status(response, f"{rule.label}: tries-left query")
    return 0  # unreachable: raise_for_status raised


def refuse_unsafe(left: int, rule: PinRule) -> None:
    """Raise PinLockedError for no tries left, PinLastTryError for one; else return."""
    if left == 0:
        raise PinLockedError(
            f"the {rule.label} is locked; the card's issuing office must reset it"
        )
    if left == 1:
        raise PinLastTryError(
            f"the {rule.label} has one try left; the agent will not risk locking the card "
            "(use the official app or the issuing office)"
        )


def verify_once(channel: ApduChannel, p2: int, rule: PinRule, pin: str) -> None:
    """Check the format, refuse a locked PIN or a last try, then VERIFY exactly once.

    Raises PinFormatError, PinLockedError, PinLastTryError or WrongPinError (with the tries
    left); returns normally when the card accepted the PIN.
    """
    if not rule.check_format(pin):
        raise PinFormatError(f"the {rule.label} is {rule.digits} digits; nothing was sent")
    refuse_unsafe(tries_left(channel, p2, rule), rule)
    response = channel.transmit(CommandApdu(0x00, 0x20, 0x00, p2, pin.encode("ascii")))
    if response.sw == SW_OK:
        log.info("%s accepted", rule.label)
        return
    if response.sw == SW_PIN_BLOCKED:
        raise PinLockedError(f"the {rule.label} is locked")
    if response.sw >> 4 == 0x63C:
        remaining = response.sw & 0x0F
        log.warning("%s refused: %d tries left", rule.label, remaining)
        if remaining == 0:
            raise PinLockedError(f"wrong {rule.label}; the card is now locked")
        raise WrongPinError(f"wrong {rule.label}: {remaining} tries left", remaining)
    raise_for_status(response, f"{rule.label}: VERIFY")
