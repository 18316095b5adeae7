"""The registry's own timetable for guardians and insurers, on its clock in Japan time: once a
Japan day the digests of the day that ended (``guardian.digests``), once a Japan month the
summaries of the month that ended (``insurer.summaries``).

``msp-registry serve`` runs :meth:`Timetable.run` on a thread of its own, with its own store
connection: what it commits is published by the worker's fan-out like everything else. A day
or month is done once: the exchange log says whether its digests or summaries went (so a
restart does not send them again), and ``msp-registry guardian digest`` / ``insurer summary``
remain for a run by hand (``--now`` for tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from msp_protocol.records import parse_ts

from ..errors import StoreError
from ..store import Batch, Store
from .guardian import digests
from .insurer import summaries
from .summaries import day_bounds, japan_day, japan_month, month_bounds

log = logging.getLogger(__name__)

#: How often the timetable looks at the clock, seconds.
TICK_S = 60.0


class Timetable:
    """What is due for guardians and insurers at an instant (see the module docstring)."""

    def __init__(self, store: Store,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self.store = store
        self.clock = clock
        self._days: set[date] = set()
        self._months: set[str] = set()

    def _sent(self, kind: str, start: datetime, end: datetime) -> bool:
        """True if the exchange log holds a ``kind`` sending of data inside ``[start, end)``."""
        for person in self.store.persons():
            for row in self.store.exchanges(person.id):
                e = row.exchange
                if e.kind == kind and start <= parse_ts(e.data_time) < end:
                    return True
        return False

    def step(self) -> int:
        """Queue what is due now; returns how many messages."""
        now = self.clock()
        queued = 0
        day = japan_day(now) - timedelta(days=1)
        if day not in self._days:
            if not self._sent("digest", *day_bounds(day)):
                pubs = digests(self.store, now, day)
                self.store.commit(Batch(publications=pubs))
                queued += len(pubs)
                log.info("queued %d guardian digests of %s", len(pubs), day)
            self._days.add(day)
        month = japan_month(month_bounds(japan_month(now))[0] - timedelta(days=1))
        if month not in self._months:
            if not self._sent("summary", *month_bounds(month)):
                pubs = summaries(self.store, month)
                self.store.commit(Batch(publications=pubs))
                queued += len(pubs)
                log.info("queued %d insurer summaries of %s", len(pubs), month)
            self._months.add(month)
        return queued

    def run(self, stop: threading.Event, tick_s: float = TICK_S) -> None:
        """Step every ``tick_s`` seconds until ``stop`` is set; a failing database is logged
        and tried again at the next tick."""
        while not stop.is_set():
            try:
                self.step()
            except StoreError as exc:
                log.warning("guardian/insurer timetable: %s (tried again in %.0f s)", exc,
                            tick_s)  # fmt: skip
            stop.wait(tick_s)
