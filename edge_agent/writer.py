"""Turns what the stages produce into outbox records, tagged with the driver's session.

It keeps the session the records belong to and the trips driven in it (for the totals of
``session.end``). Every body is checked against its schema once, when it is made (the
builders of ``edge_agent.records``, or here for the bodies other stages make: trouble codes,
health); the outbox then signs it without checking it again. A body the protocol refuses
and a record the outbox refuses (full, disk full, read-only) are counted and logged, never
fatal: the agent keeps scoring and retries with the next record.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from msp_protocol import bodies
from msp_protocol.consent import ConsentLike, public_consented
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import b64url
from msp_protocol.records import checked

from . import later_consents
from .errors import OutboxError
from .outbox import NewRecord, Outbox
from .ratelimit import RateLimitedLog
from .records import (
    emergency_body,
    event_body,
    session_end_body,
    session_start_body,
    trip_body,
)
from .scoring import Event, ScoringConfig, Trip

if TYPE_CHECKING:  # sessions come from the card thread: the agent without a card never loads them
    from .identity.session import DriverSession
    from .identity.watcher import SessionEnded
    from .public_stats import PublicStats

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B", bound=bodies.Body)


class RecordWriter:
    """Appends records to ``outbox`` from the main loop's thread; :attr:`counts` holds
    ``records.<kind>`` (appended), ``records.refused`` and ``records.invalid``."""

    def __init__(self, outbox: Outbox, scoring: ScoringConfig | None = None) -> None:
        self.outbox = outbox
        self.counts: Counter[str] = Counter()
        self.session: str | None = None
        self._trips: list[Trip] = []
        self._warn = RateLimitedLog(log)
        self.scoring = scoring
        #: the open session's contributions to public statistics, while its driver consents
        #: ``public`` (the agent feeds it the scorer's samples): docs/public.md
        self.public: PublicStats | None = None
        self._consents: tuple[ConsentLike, ...] = ()  # the login's
        #: what the driver's card signed since login (``msp-agent card consent``, another
        #: process): read from beside the outbox, at most once a second
        self._card: str | None = None
        self._later: list[bodies.ConsentStatement] = []
        self._later_mark: tuple[int, int] | None = None
        self._later_read = 0.0

    def _body(self, build: Callable[[T], B], source: T) -> B | None:
        """The body ``build`` makes of ``source``, or None (counted) if the protocol refuses it:
        a value out of its schema's range, an instant before 1990 (a log's relative clock)."""
        try:
            return build(source)
        except ProtocolError as exc:
            self.counts["records.invalid"] += 1
            log.error("record refused by its schema: %s", exc)
            return None

    def _append(self, items: Sequence[NewRecord]) -> None:
        try:
            stored = self.outbox.append_many(items)
        except ProtocolError as exc:  # an envelope the protocol refuses: keep running
            if len(items) > 1:  # one bad record must not cost the batch: append one by one
                for item in items:
                    self._append([item])
                return
            self.counts["records.invalid"] += 1
            log.error("record refused by its schema: %s", exc)
            return
        except OutboxError as exc:
            self.counts["records.refused"] += len(items)
            self._warn("refused", "outbox refused %d record(s): %s", len(items), exc)
            return
        for record in stored:
            self.counts[f"records.{record.kind}"] += 1

    def events(self, events: Sequence[Event]) -> None:
        """Append driving events; a crash also gets an ``emergency`` record, ahead of it."""
        items: list[NewRecord] = []
        for event in events:
            made: list[bodies.Body | None] = []
            if event.type == "crash":
                made.append(self._body(emergency_body, event))
            made.append(self._body(event_body, event))
            items += [NewRecord(b, event.start, self.session) for b in made if b is not None]
        if items:
            self._append(items)

    def trips(self, trips: Sequence[Trip]) -> None:
        """Append finished trips; they count towards the open session's totals."""
        if not trips:
            return
        self._trips.extend(trips)
        made = [(t, self._body(trip_body, t)) for t in trips]
        items = [NewRecord(body, t.end, self.session) for t, body in made if body is not None]
        if items:
            self._append(items)
        for trip in trips:
            log.info("trip recorded: %.3f km, %d events, session %s", trip.distance_km,
                     len(trip.events), self.session)  # fmt: skip
        if self.public is not None:
            self.refresh_consents(datetime.now(UTC), force=True)  # a revocation of just now
        if self.public is not None:
            self._public(trips)

    def _public(self, trips: Sequence[Trip]) -> None:
        """``stats`` records of the trips' contributions, with no session id, if the driver's
        ``public`` consent still holds at each trip's end; otherwise nothing leaves."""
        assert self.public is not None
        for trip in trips:
            if not self._public_at(datetime.fromtimestamp(trip.end, UTC)):
                self.public.discard()
                continue
            try:
                made = self.public.trip_ended(trip)
            except ProtocolError as exc:
                self.counts["records.invalid"] += 1
                log.error("stats record refused by its schema: %s", exc)
                continue
            if made:
                self._append([NewRecord(body, trip.end, None) for body in made])

    def session_started(self, session: DriverSession) -> None:
        """Append ``session.start``; later records carry the session's id."""
        self.session, self._trips = session.id, []
        self.public = None
        self._card = b64url(session.start.card_certificate_sha256)  # as the CLI names it
        self._later, self._later_mark = [], None
        self.consents_changed(session.start.statement.consents, session.started)
        body = self._body(session_start_body, session.start)
        if body is not None:
            self._append([NewRecord(body, session.started.timestamp(), session.id)])

    def consents_changed(self, consents: Sequence[ConsentLike], at: datetime) -> None:
        """The open session's login consents are now ``consents``: contributions to public
        statistics start or stop with ``public`` (with what the card signed since:
        :meth:`refresh_consents`)."""
        self._consents = tuple(consents)
        self._follow_public(at)

    def refresh_consents(self, now: datetime, *, force: bool = False) -> None:
        """Take in the grants and revocations the driver's card signed since login, kept
        beside the outbox by ``msp-agent card consent`` (``identity.later_consents``); checks
        the file at most once a second (unless ``force``) and reads it only when it
        changed."""
        path = self.outbox.path
        tick = time.monotonic()
        if self.session is None or self._card is None or path is None:
            return
        if tick - self._later_read < 1.0 and not force:
            return
        self._later_read = tick
        try:
            info = os.stat(later_consents.beside(path))
        except OSError:
            return
        mark = (info.st_size, info.st_mtime_ns)
        if mark != self._later_mark:
            self._later_mark = mark
            self._later = later_consents.statements(later_consents.beside(path), self._card)
            self._follow_public(now)

    def _public_at(self, at: datetime) -> bool:
        """True if the driver's ``public`` consent holds at ``at``, later acts included."""
        return public_consented(later_consents.in_force(self._consents, self._later, at), at)

    def _follow_public(self, at: datetime) -> None:
        if not self._public_at(at):
            if self.public is not None:
                self.public.discard()
            self.public = None
        elif self.public is None:
            from .public_stats import PublicStats  # noqa: PLC0415 - h3 only with the consent

            self.public = PublicStats(self.scoring or ScoringConfig())

    def session_ended(self, ended: SessionEnded) -> None:
        """Append ``session.end`` with the totals of the session's trips."""
        body = self._body(lambda end: session_end_body(end, self._trips), ended.body)
        if body is not None:
            self._append([NewRecord(body, body.ended_at, ended.body.session)])
        if self.session == ended.body.session:
            self.session, self._trips = None, []
            self.public, self._consents = None, ()
            self._card, self._later, self._later_mark = None, [], None

    def dtc(self, body: bodies.Dtc) -> None:
        """Append a ``dtc`` record (trouble codes read at start-up), stamped now; the body is
        checked first (the codes come from the vehicle)."""
        if self._body(checked, body) is not None:
            self._append([NewRecord(body, time.time(), self.session)])

    def health(self, body: bodies.Health) -> None:
        """Append a ``health`` record, stamped with the host clock; the body is checked first
        (its error counters are named by every stage)."""
        if self._body(checked, body) is not None:
            self._append([NewRecord(body, time.time(), None)])
