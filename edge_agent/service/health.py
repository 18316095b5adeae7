"""The agent's ``health`` record: rates and counters since the previous one, process usage.

The contract's ``health`` body has fixed fields (uptime, outbox depth, frames/s, evicted,
refused) and one open map of integer counters, ``errors``; everything else the operator
needs goes there under dotted names (docs/configuration.md lists them):

* ``bus.<name>.frames_per_s``; ``bus.<name>.frames`` / ``.dropped`` / ``.read_error``: since
  the previous health record
* ``decode.<reason>``, ``scoring.<reason>``: rejections since the previous health record
* ``queue.frames``, ``queue.card``: queue depths now
* ``uplink.connected`` (0/1), ``uplink.published``, ``uplink.acked``, ``uplink.acked_seq``,
  ``uplink.last_ack_age_s`` (after the first ack)
* ``card.reader`` (0/1), ``card.errors``
* ``process.rss_kib``, ``process.max_rss_kib``, ``process.cpu_ms``
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
