"""Errors of the card stack, rooted at ``edge_agent.errors.CardError``.

CardError
 ├── ReaderError            no PC/SC service, no such reader, or pyscard missing
 ├── CardRemovedError       no card in the reader, or it left in the middle of a command
 ├── StatusWordError        the card answered a status word other than success
 │    ├── CardFileNotFoundError    6A 82: the application or file does not exist
 │    ├── SecurityStatusError   69 82: the PIN has not been verified for this operation
 │    └── UnsupportedInstructionError 6D 00 / 6E 00: the card does not know the instruction or class
 ├── PinError               the PIN was not accepted, or must not be tried
 │    ├── PinFormatError        not the card's PIN format (checked before anything is sent)
 │    ├── WrongPinError         the card refused the PIN; carries the tries left
 │    ├── PinLastTryError       one try left: the agent refuses to spend it
 │    └── PinLockedError        69 83 / no tries left: the card is locked
 ├── CardDataError          a file on the card does not parse (names the file, tag and offset)
 └── CardImageError         a virtual card image is unusable (names the file and field)
"""

from __future__ import annotations

from ..errors import CardError


class ReaderError(CardError):
    """The reader (or the PC/SC service behind it) is unavailable."""


class CardRemovedError(CardError):
    """There is no card in the reader, or it was removed while a command was in flight."""


class StatusWordError(CardError):
    """The card answered with a status word other than 90 00; ``sw`` holds it."""

    def __init__(self, message: str, sw: int) -> None:
        super().__init__(f"{message}: card answered {sw:04X}")
        self.sw = sw


class CardFileNotFoundError(StatusWordError):
    """6A 82: the selected application or elementary file does not exist on this card."""


class SecurityStatusError(StatusWordError):
    """69 82: the operation needs a PIN that has not been verified."""


class UnsupportedInstructionError(StatusWordError):
    """6D 00 or 6E 00: the card does not support this instruction or class byte."""


class PinError(CardError):
    """The PIN was refused, or the agent will not try it."""


class PinFormatError(PinError):
    """The PIN does not have the card's format; nothing was sent to the card."""


class WrongPinError(PinError):
    """The card refused the PIN; ``tries_left`` says how many tries remain before it locks."""

    def __init__(self, message: str, tries_left: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class PinLastTryError(PinError):
    """Only one try is left; the agent never spends it, so the card cannot lock by our hand."""

    tries_left = 1


class PinLockedError(PinError):
    """The PIN is blocked (69 83, or no tries left); only the issuing office can reset it."""

    tries_left = 0


class CardDataError(CardError):
    """A file read from the card does not have the expected structure."""


class CardImageError(CardError):
    """A virtual card image file is missing, malformed or incomplete."""
