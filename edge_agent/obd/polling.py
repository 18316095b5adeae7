"""Polling live values: a per-PID rate schedule and the loop that feeds samples downstream."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..samples import Sample
from .errors import AdapterError, AdapterReplyError, NoResponseError, ObdError
from .pids import MAX_PIDS_PER_REQUEST, PIDS
from .reader import ObdReader

log = logging.getLogger(__name__)

#: Default rates (Hz): what scoring needs fast, the rest slowly.
DEFAULT_RATES: dict[int, float] = {
    0x0C: 10.0,  # engine speed
    0x0D: 10.0,  # vehicle speed
    0x5A: 5.0,  # relative accelerator pedal
    0x49: 5.0,  # accelerator pedal D
    0x11: 5.0,  # throttle
    0x04: 2.0,  # load
    0x10: 2.0,  # MAF (fuel estimate when there is no fuel rate)
    0x5E: 2.0,  # fuel rate
    0x1F: 0.2,  # run time
    0x4A: 0.2,  # accelerator pedal E
    0xA6: 0.2,  # odometer
    0x05: 0.1,  # coolant
    0x0F: 0.1,  # intake air
    0x2F: 0.1,  # fuel level
    0x46: 0.1,  # ambient air
}
#: No PID is polled faster than this: 20 Hz is above what ECUs refresh OBD values at.
MAX_RATE_HZ = 20.0
#: Quiet time after every request, so polling never takes the whole bus (at most ~50 req/s).
DEFAULT_MIN_GAP_S = 0.02
#: Wait after a request no ECU answered (ignition off, ECU asleep) before the next one.
NO_ANSWER_BACKOFF_S = 1.0


class Schedule:
    """Decides which PIDs are due, from rates in Hz; pure, driven by the caller's clock.

    Each PID is requested at most at its rate: after a request it is next due one period
    later, counted from when it was sent, so a stall never causes a catch-up burst.
    """

    def __init__(self, rates: Mapping[int, float], supported: frozenset[int] | None = None):
        for pid, rate in rates.items():
            if pid not in PIDS:
                raise ConfigError(f"poll rate for PID 0x{pid:02X}: not a PID this agent decodes")
            if not 0 < rate <= MAX_RATE_HZ or math.isnan(rate):
                raise ConfigError(
                    f"poll rate for PID 0x{pid:02X}: {rate} Hz is outside (0, {MAX_RATE_HZ}]"
                )
        skipped = sorted(p for p in rates if supported is not None and p not in supported)
        if skipped:
            log.info("not polling PIDs the car does not support: %s", [f"{p:02X}" for p in skipped])
        self._period = {p: 1.0 / r for p, r in rates.items() if p not in skipped}
        self._next = dict.fromkeys(self._period, -math.inf)

    @property
    def pids(self) -> tuple[int, ...]:
        """The PIDs being polled."""
        return tuple(self._period)

    def due(self, now: float) -> tuple[int, ...]:
        """Return up to 6 PIDs due at ``now``, the most overdue (then the fastest) first."""
        ready = [p for p, t in self._next.items() if t <= now]
        ready.sort(key=lambda p: (self._next[p], self._period[p]))
        return tuple(ready[:MAX_PIDS_PER_REQUEST])

    def mark(self, pids: tuple[int, ...], now: float) -> None:
        """Record that ``pids`` were requested at ``now``."""
        for pid in pids:
            self._next[pid] = now + self._period[pid]

    def next_due(self) -> float:
        """When the next PID falls due (``inf`` with nothing to poll)."""
        return min(self._next.values(), default=math.inf)


@dataclass(slots=True)
class PollStats:
    """What a polling run did."""

    requests: int = 0
    samples: int = 0
    failures: Counter[str] = field(default_factory=Counter)


class Poller:
    """Polls ``schedule``'s PIDs through ``reader`` and hands each answer's samples to ``sink``.

    One request is in flight at a time and ``min_gap_s`` separates requests. Requests nobody
    answers are counted and followed by a back-off, and so are transient adapter error replies
    that outlived the transport's repeats (``CAN ERROR``, ``BUS BUSY``..., counted by kind);
    any other adapter failure ends the run by raising AdapterError, since the link itself is
    gone.
    """

    def __init__(
        self,
        reader: ObdReader,
        schedule: Schedule,
        sink: Callable[[list[Sample]], None],
        *,
        min_gap_s: float = DEFAULT_MIN_GAP_S,
        backoff_s: float = NO_ANSWER_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._schedule = schedule
        self._sink = sink
        self._min_gap = min_gap_s
        self._backoff = backoff_s
        self._clock = clock

    def run(self, stop: threading.Event, max_requests: int | None = None) -> PollStats:
        """Poll until ``stop`` is set (or ``max_requests`` requests were made); return stats."""
        stats = PollStats()
        while not stop.is_set() and (max_requests is None or stats.requests < max_requests):
            now = self._clock()
            pids = self._schedule.due(now)
            if not pids:
                stop.wait(min(max(self._schedule.next_due() - now, 0.0), 0.5))
                continue
            self._schedule.mark(pids, now)
            stats.requests += 1
            pause = self._min_gap
            try:
                samples = self._reader.read_values(pids)
            except AdapterReplyError as exc:
                if not exc.transient:
                    raise
                stats.failures[exc.kind] += 1
                log.warning("%s; retrying in %.1f s", exc, self._backoff)
                pause = self._backoff
            except AdapterError:
                raise
            except NoResponseError as exc:
                stats.failures["no_response"] += 1
                log.info("%s; retrying in %.1f s", exc, self._backoff)
                pause = self._backoff
            except ObdError as exc:
                stats.failures[type(exc).__name__] += 1
                log.warning("poll of %s failed: %s", [f"{p:02X}" for p in pids], exc)
            else:
                stats.samples += len(samples)
                if samples:
                    self._sink(samples)
            stop.wait(pause)
        return stats
