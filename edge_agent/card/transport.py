"""The reader transport interface, its lazy back-end table, and the in-process transport."""

from __future__ import annotations

import importlib
import logging
from typing import Protocol, runtime_checkable

from .errors import CardRemovedError, ReaderError

log = logging.getLogger(__name__)


@runtime_checkable
class CardTransport(Protocol):
    """Moves raw APDUs between the agent and one card in one reader.

    Every method raises ``CardRemovedError`` when no card is there (or it leaves mid-command)
    and ``ReaderError`` when the reader itself is unusable.
    """

    @property
    def name(self) -> str:
        """The reader's name, for messages."""
        ...

    def card_present(self) -> bool:
        """Whether a card sits in the reader now (never raises CardRemovedError)."""
        ...

    def connect(self) -> bytes:
        """Power the card up and open a channel; returns its ATR."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU and return the response APDU (data + SW1 SW2)."""
        ...

    def disconnect(self) -> None:
        """Close the channel; safe to call twice or after the card left."""
        ...


class CardSimulator(Protocol):
    """What the in-process transport drives: a card object such as ``VirtualCard``."""

    def power_on(self) -> bytes:
        """Reset the card's volatile state and return its ATR."""
        ...

    def atr(self) -> bytes:
        """The card's answer to reset, without resetting it."""
        ...

    def process(self, apdu: bytes) -> bytes:
        """Answer one command APDU with a response APDU."""
        ...


class InProcessTransport:
    """Calls a card simulator directly: the transport for unit tests and demos without pcscd.

    ``insert()``/``remove()`` model the card entering and leaving the reader;
    ``remove_after(n)`` lets the card leave after ``n`` more APDUs, mid-exchange.
    """

    def __init__(self, card: CardSimulator | None, name: str = "in-process") -> None:
        self._card = card
        self._name = name
        self._connected = False
        self._budget: int | None = None

    @property
    def name(self) -> str:
        """The reader's name."""
        return self._name

    def insert(self, card: CardSimulator) -> None:
        """Put ``card`` into the reader."""
        self._card = card
        self._budget = None

    def remove(self) -> None:
        """Take the card out; an open channel breaks."""
        self._card = None
        self._connected = False

    def remove_after(self, apdus: int) -> None:
        """Let the card leave once ``apdus`` more commands have been answered."""
        self._budget = apdus

    def card_present(self) -> bool:
        """Whether a card is inserted."""
        return self._card is not None

    def connect(self) -> bytes:
        """Power the inserted card up; raises CardRemovedError when there is none."""
        if self._card is None:
            raise CardRemovedError(f"no card in reader {self._name!r}")
        self._connected = True
        return self._card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        """Pass ``apdu`` to the card; raises CardRemovedError once it has left."""
        if self._budget is not None:
            if self._budget <= 0:
                self.remove()
            self._budget -= 1
        if self._card is None or not self._connected:
            raise CardRemovedError(f"the card left reader {self._name!r} during a command")
        return self._card.process(apdu)

    def disconnect(self) -> None:
        """Close the channel."""
        self._connected = False


#: Transport back ends loaded on demand: a missing optional dependency breaks only its entry.
TRANSPORTS: dict[str, tuple[str, str]] = {
    "pcsc": ("edge_agent.card.pcsc", "PcscTransport"),
}


def open_transport(kind: str, reader: str | None = None) -> CardTransport:
    """Return the ``kind`` transport bound to ``reader`` (None: the first reader found)."""
    try:
        module_name, class_name = TRANSPORTS[kind]
    except KeyError:
        known = ", ".join(sorted(TRANSPORTS))
        raise ReaderError(f"unknown card transport {kind!r} (known: {known})") from None
    module = importlib.import_module(module_name)
    transport: CardTransport = getattr(module, class_name)(reader)
    return transport
