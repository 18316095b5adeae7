"""Turns card insertion and removal into driver sessions: poll it, act on what it returns.

Card in → login (once per insertion: a refused card is not asked again until it is taken out
and put back); card out → ``session.end`` (card_removed); ignition off or the session
lasting past ``max_session_s`` → ``session.end`` too, and the card must be reinserted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..card.errors import ReaderError
from ..card.transport import CardTransport
from .binding import EndReason, SessionEndBody
from .errors import BindingRefusedError, RefusalReason
from .session import DriverSession, SessionManager

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A driver logged in; ``session.start.to_json()`` is the record body."""

    session: DriverSession


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A session ended; ``body.to_json()`` is the ``session.end`` record body."""

    body: SessionEndBody


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """A card was presented and refused; shown to the driver, no record."""

    reason: RefusalReason
    message: str
    tries_left: int | None


WatchEvent = SessionStarted | SessionEnded | LoginRefused


class CardWatcher:
    """Drives a SessionManager from one reader's card presence."""

    def __init__(self, manager: SessionManager, transport: CardTransport) -> None:
        self.manager = manager
        self.transport = transport
        self._await_removal = False
        #: Called when a card is presented, just before the login (the consent question).
        self.before_login: Callable[[], None] | None = None

    def _present(self) -> bool:
        try:
            return self.transport.card_present()
        except ReaderError as exc:
            log.warning("reader %s unavailable: %s", self.transport.name, exc)
            return False

    def poll(self) -> WatchEvent | None:
        """Look at the reader once; return what changed, if anything."""
        present = self._present()
        session = self.manager.session
        if session is not None:
            if not present:
                return self._end(EndReason.CARD_REMOVED)
            limit = self.manager.config.max_session_s
            age = (self.manager.clock() - session.started).total_seconds()
            if limit is not None and age >= limit:
                return self._end(EndReason.TIMEOUT)
            return None
        if not present:
            self._await_removal = False
            return None
        if self._await_removal:
            return None
        self._await_removal = True
        try:
            if self.before_login is not None:
                self.before_login()
            return SessionStarted(self.manager.login(self.transport))
        except BindingRefusedError as exc:
            return LoginRefused(exc.reason, str(exc), exc.tries_left)

    def ignition_off(self) -> SessionEnded | None:
        """End the session because the ignition went off (the card stays in)."""
        return self._end(EndReason.IGNITION_OFF) if self.manager.session else None

    def _end(self, reason: EndReason) -> SessionEnded | None:
        self.transport.disconnect()
        self._await_removal = reason is not EndReason.CARD_REMOVED
        body = self.manager.end(reason)
        return SessionEnded(body) if body is not None else None
