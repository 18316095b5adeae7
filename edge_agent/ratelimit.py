"""Rate-limited logging for per-frame problems: one line per reason per interval, with a count."""

from __future__ import annotations

import logging
import time
from collections import Counter


class RateLimitedLog:
    """Logs at WARNING at most once per ``interval`` seconds per key, counting what it held back.

    Uses the host's monotonic clock on purpose: this limits log volume, it is not data time.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def __call__(self, key: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` under ``key`` unless one was logged less than ``interval`` ago."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] += 1
            return
        held = self._held.pop(key, 0)
        self._last[key] = now
        if held:
            self._log.warning(msg + " (%d more %s since last report)", *args, held, key)
        else:
            self._log.warning(msg, *args)
