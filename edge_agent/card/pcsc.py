"""The PC/SC reader transport: pyscard talking to pcscd, for real readers and for vpcd.

pyscard is imported here only, and this module is loaded only through
``edge_agent.card.transport.open_transport``, so the agent runs without pyscard when no
PC/SC reader is configured.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import CardRemovedError, ReaderError

log = logging.getLogger(__name__)


def _pyscard() -> tuple[Any, Any, Any, tuple[type[Exception], ...]]:
    """Import pyscard's reader list, scard module, exceptions and the errors that mean "no
    PC/SC service", or explain what is missing."""
    try:
        from smartcard import Exceptions, scard  # noqa: PLC0415
        from smartcard.pcsc.PCSCExceptions import BaseSCardException  # noqa: PLC0415
        from smartcard.System import readers  # noqa: PLC0415
    except ImportError as exc:
        raise ReaderError(
            "PC/SC support needs pyscard: pip install 'msp-gateway[card]' "
            "(and libpcsclite + swig to build it)"
        ) from exc
    return readers, scard, Exceptions, (Exceptions.SmartcardException, BaseSCardException)


def list_readers() -> list[str]:
    """Return the names of the readers pcscd knows; raises ReaderError when pcscd is not there."""
    readers, _, _, service_errors = _pyscard()
    try:
        return [str(reader) for reader in readers()]
    except service_errors as exc:
        raise ReaderError(f"cannot reach the PC/SC service (is pcscd running?): {exc}") from exc


class PcscTransport:
    """One PC/SC reader. ``reader`` selects it by exact name or prefix; None picks the first
    reader holding a card, else the first reader."""

    def __init__(self, reader: str | None = None) -> None:
        self._readers, self._scard, self._exc, self._service_errors = _pyscard()
        self._wanted = reader
        self._reader: Any = None
        self._connection: Any = None

    @property
    def name(self) -> str:
        """The reader's name (or the one asked for, before it was found)."""
        if self._reader is not None:
            return str(self._reader)
        return self._wanted or "first PC/SC reader"

    def _find(self) -> Any:
        try:
            found = list(self._readers())
        except self._service_errors as exc:
            raise ReaderError(f"cannot reach the PC/SC service (is pcscd running?): {exc}") from exc
        if not found:
            raise ReaderError("no PC/SC reader is connected")
        if self._wanted is not None:
            for reader in found:
                if str(reader) == self._wanted or str(reader).startswith(self._wanted):
                    return reader
            names = ", ".join(str(r) for r in found)
            raise ReaderError(f"no PC/SC reader named {self._wanted!r} (present: {names})")
        for reader in found:
            if self._state(str(reader)) & self._scard.SCARD_STATE_PRESENT:
                return reader
        return found[0]

    def _state(self, reader_name: str) -> int:
        scard = self._scard
        rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rv != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"cannot reach the PC/SC service: {scard.SCardGetErrorMessage(rv)}")
        try:
            rv, states = scard.SCardGetStatusChange(
                context, 0, [(reader_name, scard.SCARD_STATE_UNAWARE)]
            )
            if rv != scard.SCARD_S_SUCCESS:
                raise ReaderError(
                    f"reader {reader_name!r} has no status: {scard.SCardGetErrorMessage(rv)}"
                )
            return int(states[0][1])
        finally:
            scard.SCardReleaseContext(context)

    def card_present(self) -> bool:
        """Whether the reader holds a card (asks pcscd, without talking to the card)."""
        if self._reader is None:
            self._reader = self._find()
        return bool(self._state(str(self._reader)) & self._scard.SCARD_STATE_PRESENT)

    def connect(self) -> bytes:
        """Connect to the card (T=0 or T=1) and return its ATR."""
        self.disconnect()
        self._reader = self._find()
        connection = self._reader.createConnection()
        try:
            connection.connect()
        except (self._exc.NoCardException, self._exc.CardConnectionException) as exc:
            raise CardRemovedError(f"no card in reader {self.name!r}: {exc}") from exc
        self._connection = connection
        log.info("connected to the card in %s", self.name)
        return bytes(connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU; a card that left (or was reset) raises CardRemovedError."""
        if self._connection is None:
            raise CardRemovedError(f"no open channel to a card in reader {self.name!r}")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except self._exc.CardConnectionException as exc:
            self.disconnect()
            raise CardRemovedError(f"the card in {self.name!r} stopped answering: {exc}") from exc
        return bytes(data) + bytes((sw1, sw2))

    def disconnect(self) -> None:
        """Release the card; errors from a card that already left are ignored."""
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            connection.disconnect()
        except self._exc.CardConnectionException as exc:
            log.debug("disconnect from %s: %s", self.name, exc)
        try:  # frees the PC/SC context now rather than in a finaliser after pcscd is gone
            connection.release()
        except self._exc.CardConnectionException as exc:
            log.debug("release of %s: %s", self.name, exc)
