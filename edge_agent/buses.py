"""Live CAN buses through python-can: any interface by name, several at once, each named.

Each bus is read by its own thread into one bounded queue; a full queue drops the frame and
counts it (never unbounded memory). Filters built from the decoders' IDs are handed to
python-can, which installs them in the kernel on socketcan and applies them in software
elsewhere, so unwanted frames cost nothing further up.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import can

from .errors import IngestError
from .frames import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusSpec:
    """A bus to open: a name of ours and python-can's interface, channel and options."""

    name: str
    interface: str
    channel: str
    bitrate: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def can_filters(ids: frozenset[int]) -> list[can.typechecking.CanFilter]:
    """python-can filters that pass exactly ``ids`` (standard IDs ≤ 0x7FF, else extended).

    Aligned runs of consecutive IDs (0x18DAF100-0x18DAF1FF for OBD-II answers, say) become
    one mask filter each, keeping the kernel's filter list short.
    """
    filters: list[can.typechecking.CanFilter] = []
    ordered = sorted(ids)
    i = 0
    while i < len(ordered):
        start = ordered[i]
        full = 0x7FF if start <= 0x7FF else 0x1FFFFFFF
        size = 1
        # Double the block while it stays aligned and every ID in it is wanted.
        while (
            start % (size * 2) == 0
            and i + size * 2 <= len(ordered)
            and ordered[i + size * 2 - 1] == start + size * 2 - 1
        ):
            size *= 2
        filters.append({"can_id": start, "can_mask": full & ~(size - 1)})
        i += size
    return filters


class FrameQueue:
    """A bounded queue of frames that reader threads fill and the main loop drains."""

    def __init__(self, maxsize: int) -> None:
        self.counts: Counter[str] = Counter()
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize)
        self._stop = threading.Event()

    def frames(self, idle_timeout: float | None = None) -> Iterator[Frame]:
        """Yield frames as they arrive, until stopped or ``idle_timeout`` s of silence."""
        while not self._stop.is_set():
            try:
                yield self._queue.get(timeout=idle_timeout if idle_timeout is not None else 0.5)
            except queue.Empty:
                if idle_timeout is not None:
                    return

    def depth(self) -> int:
        """Frames waiting in the queue for the decode stage."""
        return self._queue.qsize()


class LiveBuses(FrameQueue):
    """Reads several python-can buses at once into one bounded queue of frames."""

    def __init__(
        self, specs: Sequence[BusSpec], wanted: frozenset[int] | None, maxsize: int = 10_000
    ) -> None:
        super().__init__(maxsize)
        self._buses: list[tuple[BusSpec, can.BusABC]] = []
        filters = can_filters(wanted) if wanted is not None else None
        try:
            for spec in specs:
                kwargs = dict(spec.options)
                if spec.bitrate is not None:
                    kwargs["bitrate"] = spec.bitrate
                bus = can.Bus(
                    interface=spec.interface, channel=spec.channel, can_filters=filters, **kwargs
                )
                self._buses.append((spec, bus))
        except (can.CanError, ValueError, OSError, ImportError) as exc:
            self.close()
            raise IngestError(
                f"bus {spec.name!r} ({spec.interface} {spec.channel}): {exc}"
            ) from exc
        self._threads = [
            threading.Thread(
                target=self._read, args=(spec, bus), name=f"can-{spec.name}", daemon=True
            )
            for spec, bus in self._buses
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, spec: BusSpec, bus: can.BusABC) -> None:
        while not self._stop.is_set():
            try:
                msg = bus.recv(timeout=0.2)
            except can.CanError as exc:
                self.counts[f"{spec.name}.read_error"] += 1
                log.warning("bus %s: read failed: %s", spec.name, exc)
                self._stop.wait(1.0)
                continue
            if msg is None or msg.is_error_frame:
                continue
            self.counts[f"{spec.name}.frames"] += 1
            frame = Frame(
                msg.timestamp, msg.arbitration_id, bytes(msg.data), msg.is_extended_id, spec.name
            )
            try:
                self._queue.put_nowait(frame)
            except queue.Full:
                self.counts[f"{spec.name}.dropped"] += 1

    def close(self) -> None:
        """Stop the reader threads and shut the buses down."""
        self._stop.set()
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=2.0)
        for _, bus in self._buses:
            bus.shutdown()

    def __enter__(self) -> LiveBuses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
