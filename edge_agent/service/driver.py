"""The card thread: owns the reader and the driver's session, reports logins and logouts.

Only this thread touches the card (PC/SC handles and the session manager are not shared).
The main loop reads :attr:`CardThread.events` and asks for an ignition-off logout with
:meth:`CardThread.ignition_off`. A login may wait on the driver's PIN for a while; nothing
else in the agent waits with it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading

from msp_protocol.consent import DEFAULT_ACCEPTED

from ..card.errors import ReaderError
from ..errors import AgentError, CardError
from ..identity.binding import EndReason
from ..identity.consent import ConsentRequest
from ..identity.errors import IdentityError
from ..identity.watcher import CardWatcher, LoginRefused, SessionEnded, WatchEvent

log = logging.getLogger(__name__)


CardEvent = WatchEvent


class CardThread:
    """Polls one reader every ``poll_s`` on its own thread; session events go to
    :attr:`events` (bounded; the main loop drains it every pass, so a put only waits if the
    main loop is stuck, and is then counted as ``card.events_waited``)."""

    def __init__(self, watcher: CardWatcher, poll_s: float,
                 consent: ConsentRequest | None = None, maxsize: int = 64) -> None:  # fmt: skip
        self.watcher = watcher
        self.consent = consent
        self.poll_s = poll_s
        self.events: queue.Queue[CardEvent] = queue.Queue(maxsize)
        self.errors = 0
        self.waited = 0
        self.reader_present = False
        self._ignition_off = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="card", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def ignition_off(self) -> None:
        """Ask for the open session (if any) to end with reason ignition_off."""
        self._ignition_off.set()

    def stop(self, timeout_s: float) -> None:
        """End the session (agent_stop) and stop; waits at most ``timeout_s`` (a login waiting
        on a PIN is abandoned: it has opened no session yet)."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("card thread still busy (a login waiting for a PIN?); leaving it")

    def _put(self, event: CardEvent) -> None:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            self.waited += 1
            self.events.put(event)

    def _run(self) -> None:
        watcher = self.watcher
        while not self._stop.is_set():
            if self._ignition_off.is_set():
                self._ignition_off.clear()
                ended = watcher.ignition_off()
                if ended is not None:
                    self._put(ended)
            try:
                watcher.transport.card_present()  # the watcher hides a missing reader
                self.reader_present = True
            except ReaderError:
                self.reader_present = False
            if watcher.manager.session is None:
                self._offer_consent()
            try:
                event = watcher.poll()
            except (CardError, IdentityError, OSError) as exc:
                self._failed("login", exc)
                event = None
            if isinstance(event, LoginRefused):
                log.warning("card refused (%s): %s", event.reason.value, event.message)
            if event is not None:
                self._put(event)
            self._stop.wait(self.poll_s)
        self._end_for_stop()

    def _offer_consent(self) -> None:
        """The next login signs the operator's request, valid ``days`` from now. The HMI shows
        the request with the PIN prompt: entering the PIN accepts it (the PIN socket has no
        per-category question yet)."""
        request = self.consent
        if request is None:
            return
        manager = self.watcher.manager
        # the PIN accepts the request, but never the public tier: that one is asked for alone
        accepted = [c for c in request.categories if c in DEFAULT_ACCEPTED]
        consents = request.accept(accepted, manager.clock())
        manager.config = dataclasses.replace(manager.config, consents=consents)

    def _failed(self, what: str, exc: AgentError | OSError) -> None:
        self.errors += 1
        level = logging.WARNING if self.errors <= 3 else logging.DEBUG
        log.log(level, "card %s failed: %s", what, exc)

    def _end_for_stop(self) -> None:
        manager = self.watcher.manager
        if manager.session is None:
            return
        try:
            self.watcher.transport.disconnect()
        except ReaderError as exc:
            log.debug("disconnect at stop: %s", exc)
        body = manager.end(EndReason.AGENT_STOP)
        if body is not None:
            self._put(SessionEnded(body))
