"""The OBD thread: active OBD-II polling (ELM327 on a serial port, or ISO-TP on a CAN
channel) feeding samples to the main loop, plus the VIN and trouble codes at start-up.

The thread owns the adapter; samples go to a bounded queue (a full queue drops the batch
and counts it in ``obd.dropped``). An adapter that fails ends the polling; the agent keeps
running on its other sources and reports ``obd.failed`` in its health records.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter

import can

from msp_protocol import bodies

from ..config import ObdConfig
from ..obd.can_client import RESPONSE_FILTERS, IsoTpTransport
from ..obd.elm327 import Elm327Transport
from ..obd.errors import ObdError
from ..obd.polling import DEFAULT_RATES, Poller, Schedule
from ..obd.reader import ObdReader
from ..obd.transport import ObdTransport
from ..samples import Sample

log = logging.getLogger(__name__)


def open_transport(config: ObdConfig) -> ObdTransport:
    """The adapter the configuration names; raises ObdError when it cannot be opened."""
    if config.serial is not None:
        return Elm327Transport(config.serial, baudrate=config.baud)
    try:
        bus = can.Bus(interface=config.interface, channel=config.can,
                      can_filters=RESPONSE_FILTERS)  # fmt: skip
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        raise ObdError(f"obd.can: cannot open {config.interface} {config.can}: {exc}") from exc
    return IsoTpTransport(bus, own_bus=True)


class ObdSource:
    """Opens the adapter and discovers the ECUs at construction (before READY); then
    :meth:`start` polls on its own thread until :meth:`close`."""

    def __init__(self, config: ObdConfig, maxsize: int = 256) -> None:
        self.config = config
        self.transport = open_transport(config)
        self.reader = ObdReader(self.transport)
        self.samples: queue.Queue[list[Sample]] = queue.Queue(maxsize)
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="obd", daemon=True)
        try:
            self.reader.discover()
        except ObdError as exc:
            self.transport.close()
            raise ObdError(f"obd: no ECU answers: {exc}") from exc
        rates = dict(DEFAULT_RATES) | dict(config.rates)
        self.schedule = Schedule({p: r for p, r in rates.items() if r > 0},
                                 self.reader.all_supported())  # fmt: skip

    def read_vin(self) -> str:
        """The VIN mode 09 reports; raises ObdError when no ECU gives a valid one."""
        return self.reader.read_vin().vin

    def read_dtc(self) -> bodies.Dtc | None:
        """The trouble codes as a ``dtc`` body; None (logged) when the car does not say."""
        try:
            return self.reader.dtc_body()
        except ObdError as exc:
            log.warning("trouble codes not read: %s", exc)
            return None

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def _sink(self, samples: list[Sample]) -> None:
        self.counts["obd.samples"] += len(samples)
        try:
            self.samples.put_nowait(samples)
        except queue.Full:
            self.counts["obd.dropped"] += len(samples)

    def _run(self) -> None:
        poller = Poller(self.reader, self.schedule, self._sink)
        try:
            stats = poller.run(self._stop)
        except ObdError as exc:
            self.counts["obd.failed"] += 1
            log.error("OBD polling stopped: %s", exc)
            return
        self.counts.update({f"obd.{k}": v for k, v in stats.failures.items()})

    def close(self) -> None:
        """Stop polling and close the adapter."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.transport.close()
