"""Where the running agent's frames come from (live buses, or a log replayed at its own
pace) and the decode stage each bus feeds.

Both offer ``frames(idle_timeout)`` and ``counts`` (``<bus>.frames``, ``<bus>.dropped``,
``<bus>.read_error``) so the main loop treats them alike. A live bus drops and counts frames
when the agent falls behind (it cannot wait); a replayed log waits instead (it can).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..buses import BusSpec, FrameQueue, LiveBuses
from ..config import AgentConfig, BusConfig
from ..decode import DbcDecoder
from ..errors import AgentError, ConfigError
from ..frames import Frame, FrameDecoder
from ..ingest import LogSource
from ..obd.passive import PassiveObdDecoder
from ..pipeline import DecodeStage
from ..replay import paced
from ..signalmap import load_signal_map

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """A running source of frames (reader threads of its own)."""

    counts: Counter[str]

    def frames(self, idle_timeout: float | None = None) -> Iterator[Frame]:
        """Yield frames as they come; return after ``idle_timeout`` s without one."""
        ...

    def depth(self) -> int:
        """Frames waiting in the source's queue."""
        ...

    def close(self) -> None:
        """Stop the reader threads and release the buses."""
        ...


class LiveSource:
    """Live python-can buses (:class:`~edge_agent.buses.LiveBuses`), one thread per bus."""

    def __init__(self, buses: Sequence[BusConfig], wanted: frozenset[int], maxsize: int) -> None:
        specs = [BusSpec(b.name, b.interface, b.channel, b.bitrate, dict(b.options))
                 for b in buses]  # fmt: skip
        self._buses = LiveBuses(specs, wanted, maxsize)
        self.counts = self._buses.counts

    def frames(self, idle_timeout: float | None = None) -> Iterator[Frame]:
        """Frames of every bus, in arrival order."""
        return self._buses.frames(idle_timeout)

    def depth(self) -> int:
        """Frames read but not yet decoded."""
        return self._buses.depth()

    def close(self) -> None:
        """Stop reading and shut the buses down."""
        self._buses.close()


class ReplaySource(FrameQueue):
    """A CAN log read by one thread at ``speed`` times its own pace into a bounded queue,
    stamped as bus ``bus``; when the log ends the source falls silent (as a parked car)."""

    def __init__(self, path: Path, bus: str, wanted: frozenset[int], speed: float,
                 maxsize: int) -> None:  # fmt: skip
        super().__init__(maxsize)
        self._log = LogSource(path, bus)
        self._bus = bus
        self.finished = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(wanted, speed), name=f"replay-{bus}", daemon=True
        )
        self._thread.start()

    def _read(self, wanted: frozenset[int], speed: float) -> None:
        try:
            for frame in paced(self._log.frames(wanted), speed):
                self.counts[f"{self._bus}.frames"] += 1
                while not self._stop.is_set():
                    try:
                        self._queue.put(frame, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        finally:
            corrupt = self._log.counts.corrupt
            if corrupt:
                self.counts.update({f"{self._bus}.{k}": v for k, v in corrupt.items()})
            self.finished.set()
            log.info("replay of %s ended after %d frames", self._log.path,
                     self.counts[f"{self._bus}.frames"])  # fmt: skip

    def close(self) -> None:
        """Stop reading the log."""
        self._stop.set()
        self._thread.join(timeout=2.0)


@contextmanager
def naming(key: str) -> Iterator[None]:
    """Refusals while opening what ``key`` configures are configuration errors naming it."""
    try:
        yield
    except AgentError as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def build_stages(config: AgentConfig) -> dict[str, DecodeStage]:
    """One decode stage per bus, from its signal map and (``obd = true``) passive OBD-II."""
    stages: dict[str, DecodeStage] = {}
    for i, bus in enumerate(config.buses):
        decoders: list[FrameDecoder] = []
        if bus.signal_map is not None:
            with naming(f"bus[{i}].signal_map"):
                decoders.append(DbcDecoder(load_signal_map(bus.signal_map)))
        if bus.obd:
            decoders.append(PassiveObdDecoder())
        stages[bus.name] = DecodeStage(decoders)
    return stages
