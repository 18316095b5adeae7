"""One ISO 15765-2 connection to one peer on a python-can bus, driven by the caller's loop.

can-isotp does the protocol (flow control, STmin, block size, timeouts); this wrapper feeds it
frames the caller has already received, so one receive loop can serve many peers without a
thread per peer, and it keeps the source timestamp of the frame that completed each message.
"""

from __future__ import annotations

import logging
from collections import deque

import can
import isotp

log = logging.getLogger(__name__)

#: A frame that cannot be queued this fast (bus off, unplugged) fails instead of blocking.
SEND_TIMEOUT_S = 0.2

_PARAMS = {
    "stmin": 0,
    "blocksize": 0,
    "tx_padding": 0x00,
    "rx_flowcontrol_timeout": 1000,
    "rx_consecutive_frame_timeout": 1000,
    "max_frame_size": 4095,
}


class IsoTpLink:
    """ISO-TP to the peer that listens on ``txid`` and sends on ``rxid``.

    Call :meth:`feed` with each received frame addressed to ``rxid`` and :meth:`poll` when idle;
    both return the messages completed since, as ``(payload, timestamp)``. Protocol errors
    (timeouts, bad sequence numbers, unexpected frames) are appended to :attr:`errors`.
    """

    def __init__(self, bus: can.BusABC, txid: int, rxid: int, extended: bool) -> None:
        mode = (
            isotp.AddressingMode.Normal_29bits if extended else isotp.AddressingMode.Normal_11bits
        )
        self._bus = bus
        self._extended = extended
        self._inbox: deque[isotp.CanMessage] = deque()
        self._last_timestamp = 0.0
        self.errors: list[str] = []
        self._stack = isotp.TransportLayerLogic(
            rxfn=self._rx,
            txfn=self._tx,
            address=isotp.Address(mode, txid=txid, rxid=rxid),
            error_handler=self._error,
            params=dict(_PARAMS),
        )

    def _rx(self, timeout: float) -> isotp.CanMessage | None:
        return self._inbox.popleft() if self._inbox else None

    def _tx(self, msg: isotp.CanMessage) -> None:
        try:
            self._bus.send(
                can.Message(
                    arbitration_id=msg.arbitration_id,
                    data=msg.data,
                    is_extended_id=msg.is_extended_id,
                ),
                timeout=SEND_TIMEOUT_S,
            )
        except can.CanError as exc:
            self.errors.append(f"send failed: {exc}")

    def _error(self, exc: Exception) -> None:
        log.debug("ISO-TP %s", exc)
        self.errors.append(f"{type(exc).__name__}: {exc}")

    def _drain(self) -> list[tuple[bytes, float]]:
        self._stack.process()
        done: list[tuple[bytes, float]] = []
        while (payload := self._stack.recv()) is not None:
            done.append((bytes(payload), self._last_timestamp))
        return done

    def feed(self, msg: can.Message) -> list[tuple[bytes, float]]:
        """Process one frame from the peer; return the messages it completes."""
        self._last_timestamp = msg.timestamp
        self._inbox.append(
            isotp.CanMessage(
                arbitration_id=msg.arbitration_id,
                dlc=msg.dlc,
                data=bytes(msg.data),
                extended_id=msg.is_extended_id,
            )
        )
        return self._drain()

    def poll(self) -> list[tuple[bytes, float]]:
        """Run timers and pending transmission without a new frame."""
        return self._drain()

    def send(self, payload: bytes) -> None:
        """Queue ``payload`` for the peer; it goes out during later ``feed``/``poll`` calls."""
        self._stack.send(payload)
        self._drain()

    @property
    def busy(self) -> bool:
        """True while a message is being received or sent."""
        return bool(self._stack.is_rx_active() or self._stack.transmitting())

    def reset(self) -> None:
        """Abandon any message in progress."""
        self._inbox.clear()
        self._stack.reset()
