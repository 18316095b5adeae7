"""The agent's ``health`` record: counters since the agent started, rates, process usage.

The contract's ``health`` body has fixed fields (uptime, outbox depth, frames/s, evicted,
refused) and one open map of integer counters, ``errors``; everything else the operator
needs goes there under dotted names (docs/configuration.md lists them):

* ``bus.<name>.frames_per_s`` (over the last ``agent.health_interval_s``);
  ``bus.<name>.frames`` / ``.dropped`` / ``.read_error`` / ``.corrupt_line``: since start
* ``decode.<reason>``, ``scoring.<reason>``, ``records.<kind>``: since start
* ``outbox.evicted_total``, ``outbox.refused_total``, ``outbox.lost_total``: since the outbox
  was created
* ``queue.frames``, ``queue.card``: queue depths now
* ``uplink.connected`` (0/1), ``uplink.published``, ``uplink.acked``, ``uplink.acked_seq``,
  ``uplink.messages``, ``uplink.last_ack_age_s`` (after the first ack)
* ``card.reader`` (0/1), ``card.errors``
* ``process.rss_kib``, ``process.max_rss_kib``, ``process.cpu_ms``

Counters are absolute (totals, not differences), so any one health record reads alone: one
the outbox evicted, or one lost in transit, takes nothing from the next. The agent looks at
its counters every ``agent.health_interval_s`` but writes a record only when something an
operator acts on changed (:func:`significant`: a rejection, a dropped frame, the uplink or
the card reader coming or going, an eviction) or ``agent.health_max_interval_s`` after the
previous one (:class:`HealthPolicy`); frame counts, rates, memory, queue depths and the
uplink's progress alone do not make a record.
"""

from __future__ import annotations

import re
import resource
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The schema allows at most this many counters; the rest are summed into ``other``.
MAX_COUNTERS = 64
_KEY = re.compile(r"[^a-z0-9_.]")


@dataclass(frozen=True, slots=True)
class Usage:
    """Process CPU time and memory."""

    cpu_s: float
    rss_kib: int
    max_rss_kib: int


def process_usage() -> Usage:
    """CPU time (user + system) and resident memory of this process."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    rss = own.ru_maxrss
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    except OSError:
        pass  # not Linux: report the peak as the current value
    return Usage(own.ru_utime + own.ru_stime, rss, own.ru_maxrss)


def counter_key(name: str) -> str:
    """``name`` made into a key the schema accepts (lower case, ``[a-z0-9_.]``, ≤ 64)."""
    key = _KEY.sub("_", name.lower())
    if not key[:1].isalpha():
        key = "x" + key
    return key[:64]


class RateWindow:
    """Differences of monotonically rising counters between two health records."""

    def __init__(self) -> None:
        self._last: Counter[str] = Counter()

    def delta(self, totals: Mapping[str, int]) -> dict[str, int]:
        """Each counter's rise since the previous call (counters that did not rise: 0)."""
        out = {name: max(0, value - self._last.get(name, 0)) for name, value in totals.items()}
        self._last = Counter(totals)
        return out


def interval_counters(delta: Mapping[str, int], elapsed_s: float) -> tuple[int, dict[str, int]]:
    """From the counters' rise over ``elapsed_s``: the frames of every bus together, and the
    counters to report: those that moved, every frame count, and each bus's frames/s."""
    frames = sum(v for k, v in delta.items() if k.endswith(".frames"))
    counters = {k: v for k, v in delta.items() if v or k.endswith(".frames")}
    counters.update({f"{k}_per_s": round(v / elapsed_s) for k, v in delta.items()
                     if k.startswith("bus.") and k.endswith(".frames")})  # fmt: skip
    return frames, counters


def total_counters(totals: Mapping[str, int], delta: Mapping[str, int],
                   elapsed_s: float) -> tuple[int, dict[str, int]]:  # fmt: skip
    """The counters to report as totals since start (those not zero, and every frame count),
    each bus's frames/s over ``elapsed_s``, and the frames of every bus over ``elapsed_s``."""
    frames, rates = interval_counters(delta, elapsed_s)
    counters = {k: v for k, v in totals.items() if v or k.endswith(".frames")}
    counters.update({k: v for k, v in rates.items() if k.endswith("_per_s")})
    return frames, counters


#: Counters that move on their own in normal running: they never make a health record alone.
_ROUTINE_SUFFIXES = (".frames", "_per_s", ".samples")
_ROUTINE_PREFIXES = ("process.", "queue.", "uplink.published", "uplink.acked",
                     "uplink.messages", "uplink.last_ack_age_s")  # fmt: skip
_NOTABLE_RECORDS = ("records.invalid", "records.refused")


def significant(counters: Mapping[str, int]) -> dict[str, int]:
    """The counters an operator acts on when they change (not frame counts, rates, memory,
    queue depths, the uplink's progress or the count of records written)."""
    return {k: v for k, v in counters.items()
            if not (k.endswith(_ROUTINE_SUFFIXES) or k.startswith(_ROUTINE_PREFIXES)
                    or (k.startswith("records.") and k not in _NOTABLE_RECORDS))}  # fmt: skip


class HealthPolicy:
    """Whether a health record is worth its bytes: the first one, one whose
    :func:`significant` counters differ from the previous record's, one reporting evictions
    or refusals, or one ``max_interval_s`` after the previous record."""

    def __init__(self, max_interval_s: float) -> None:
        self.max_interval_s = max_interval_s
        self._last: dict[str, int] | None = None
        self._written_at = 0.0

    def due(self, counters: Mapping[str, int], now: float, evicted: int = 0,
            refused: int = 0) -> str | None:  # fmt: skip
        """Why a record with ``counters`` should be written at ``now`` (monotonic), or None."""
        if self._last is None:
            return "first"
        if evicted or refused:
            return "outbox"
        if significant(counters) != self._last:
            return "changed"
        if now - self._written_at >= self.max_interval_s:
            return "interval"
        return None

    def wrote(self, counters: Mapping[str, int], now: float) -> None:
        """Record that a health record with ``counters`` was written at ``now``."""
        self._last = significant(counters)
        self._written_at = now


def bounded(counters: Mapping[str, int]) -> dict[str, int]:
    """At most :data:`MAX_COUNTERS` entries with valid keys; what does not fit is summed into
    ``other`` (so nothing silently disappears)."""
    clean: dict[str, int] = {}
    for name, value in counters.items():
        key = counter_key(name)
        clean[key] = clean.get(key, 0) + max(0, int(value))
    if len(clean) <= MAX_COUNTERS:
        return clean
    keys = sorted(clean)
    kept = {k: clean[k] for k in keys[: MAX_COUNTERS - 1]}
    kept["other"] = sum(clean[k] for k in keys[MAX_COUNTERS - 1 :])
    return kept


class HealthClock:
    """When the next health record is due, and the wall time since the previous one."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last = self.started
        self.next_due = self.started + interval_s

    def due(self, now: float) -> bool:
        """Whether a health record is due at monotonic time ``now``."""
        return now >= self.next_due

    def mark(self, now: float) -> float:
        """Record that one was written at ``now``; return the seconds since the previous one."""
        elapsed, self._last = now - self._last, now
        self.next_due = now + self.interval_s
        return max(elapsed, 1e-9)

    def reschedule(self, interval_s: float) -> None:
        """Apply a new interval (SIGHUP) from the previous record on."""
        self.interval_s = interval_s
        self.next_due = self._last + interval_s
