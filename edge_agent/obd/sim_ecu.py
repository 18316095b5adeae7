"""Simulated OBD-II ECUs answering over ISO-TP on a python-can bus, for development and tests.

Each ECU answers supported-PID bitmaps, live values that follow a repeating drive, the VIN
over multi-frame ISO-TP and its stored and pending DTCs. Misbehaviour on request: ``silent``
never answers, ``negative`` refuses every request with 0x7F, ``truncated`` stops a multi-frame
answer after its first consecutive frame, ``pending`` says "response pending" (NRC 0x78) and
answers :data:`PENDING_DELAY_S` later, ``malformed`` drops the last byte of every answer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Literal

import can

from .diagnostics import (
    PENDING_DTCS,
    PERMANENT_DTCS,
    STORED_DTCS,
    VIN_PID,
    dtc_answer,
    vin_answer,
)
from .isotp_link import IsoTpLink
from .pids import MONITOR_STATUS, PIDS, SUPPORT_PIDS, encode_monitor_status, encode_supported
from .reassembly import FUNCTIONAL_11BIT, FUNCTIONAL_29BIT, physical_request_id, segment

log = logging.getLogger(__name__)

Behaviour = Literal["normal", "silent", "negative", "truncated", "pending", "malformed"]

#: How late a ``pending`` ECU sends its real answer, after ``7F sid 78``.
PENDING_DELAY_S = 0.3

DEMO_VIN = "1HGCM82633A004352"  # a VIN with a valid check digit


def drive_value(pid: int, t: float) -> float:
    """Return PID ``pid``'s value ``t`` seconds into a repeating 60 s urban drive."""
    speed = max(0.0, 45.0 + 40.0 * math.sin(2 * math.pi * t / 60.0))
    rpm = 750.0 + 32.0 * speed
    maf = rpm / 120.0
    values = {
        0x04: 20.0 + speed / 2,
        0x05: min(90.0, 40.0 + t),
        0x0C: rpm,
        0x0D: speed,
        0x0F: 25.0,
        0x10: maf,
        0x11: 15.0 + speed / 3,
        0x1F: t,
        0x2F: 62.0,
        0x46: 18.0,
        0x49: 15.0 + speed / 2,
        0x4A: 7.5 + speed / 4,
        0x5A: speed / 1.5,
        0x5E: maf * 0.33,
        0xA6: 12345.6 + 45.0 * t / 3600.0,
    }
    return values.get(pid, 0.0)


@dataclass(frozen=True, slots=True)
class SimulatedEcu:
    """One simulated ECU: where it answers, what it supports and how it behaves."""

    response_id: int = 0x7E8
    pids: frozenset[int] = frozenset(PIDS) | {MONITOR_STATUS}
    vin: str | None = DEMO_VIN
    stored_dtcs: tuple[str, ...] = ("P0133", "C0035")
    pending_dtcs: tuple[str, ...] = ("P0420",)
    permanent_dtcs: tuple[str, ...] = ()
    behaviour: Behaviour = "normal"

    def answer(self, request: bytes, t: float) -> bytes | None:
        """Return this ECU's answer to ``request`` at drive time ``t``; None for silence."""
        if self.behaviour == "silent" or not request:
            return None
        service = request[0]
        if self.behaviour == "negative":
            return bytes([0x7F, service, 0x11])
        if self.behaviour == "malformed":
            answer = SimulatedEcu(self.response_id, self.pids, self.vin).answer(request, t)
            return answer[:-1] if answer else None
        if service == 0x01:
            return self._mode01(request[1:], t)
        if service == 0x09 and request[1:2] == bytes([VIN_PID]):
            return vin_answer(self.vin) if self.vin else bytes([0x7F, 0x09, 0x12])
        if service == STORED_DTCS:
            return dtc_answer(service, list(self.stored_dtcs))
        if service == PENDING_DTCS:
            return dtc_answer(service, list(self.pending_dtcs))
        if service == PERMANENT_DTCS:
            return dtc_answer(service, list(self.permanent_dtcs))
        return bytes([0x7F, service, 0x11])

    def _mode01(self, pids: bytes, t: float) -> bytes | None:
        advertised = set(self.pids) | {b for b in SUPPORT_PIDS[1:] if any(p > b for p in self.pids)}
        out = bytearray([0x41])
        for pid in pids:
            if pid in SUPPORT_PIDS and (pid == 0 or pid in advertised):
                out += bytes([pid]) + encode_supported(pid, advertised)
            elif pid == MONITOR_STATUS and pid in self.pids:
                out += bytes([pid]) + encode_monitor_status(
                    bool(self.stored_dtcs), len(self.stored_dtcs)
                )
            elif pid in self.pids and pid in PIDS:
                out += bytes([pid]) + PIDS[pid].encode(drive_value(pid, t))
        return bytes(out) if len(out) > 1 else None  # unsupported PIDs get silence, per J1979


class EcuSimulator:
    """Runs simulated ECUs on a python-can ``virtual`` channel (or any bus) in a thread.

    ``extended`` selects 29-bit addressing (requests on 0x18DB33F1, answers on 0x18DAF1xx,
    where ``response_id`` gives the low byte). Use as a context manager, or start()/stop().
    """

    def __init__(
        self,
        ecus: list[SimulatedEcu],
        channel: str = "obd-sim",
        extended: bool = False,
        interface: str = "virtual",
    ) -> None:
        self._extended = extended
        self._bus = can.Bus(interface=interface, channel=channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecu-sim", daemon=True)
        # physical request ID -> (ECU, its ISO-TP link, its response ID)
        self._links: dict[int, tuple[SimulatedEcu, IsoTpLink, int]] = {}
        for ecu in ecus:
            rx = ecu.response_id
            if extended:
                rx = 0x18DAF100 | (ecu.response_id & 0xFF)
            tx = physical_request_id(rx, extended)
            self._links[tx] = (ecu, IsoTpLink(self._bus, txid=rx, rxid=tx, extended=extended), rx)
        self._t0 = 0.0
        self._delayed: list[tuple[float, IsoTpLink, bytes]] = []
        self.requests = 0

    def __enter__(self) -> EcuSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start answering."""
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the bus."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._bus.shutdown()

    def _respond(self, ecu: SimulatedEcu, link: IsoTpLink, rx_id: int, request: bytes) -> None:
        self.requests += 1
        answer = ecu.answer(request, time.monotonic() - self._t0)
        if answer is None:
            return
        if ecu.behaviour == "pending" and answer[:1] != b"\x7f":
            link.send(bytes([0x7F, request[0], 0x78]))
            self._delayed.append((time.monotonic() + PENDING_DELAY_S, link, answer))
            return
        if ecu.behaviour == "truncated" and len(answer) > 7:
            for data in segment(answer)[:2]:
                self._bus.send(
                    can.Message(arbitration_id=rx_id, data=data, is_extended_id=self._extended)
                )
            return
        link.send(answer)

    def _run(self) -> None:
        functional = FUNCTIONAL_29BIT if self._extended else FUNCTIONAL_11BIT
        while not self._stop.is_set():
            try:
                msg = self._bus.recv(timeout=0.01)
            except can.CanError as exc:
                log.warning("ECU simulator receive failed: %s", exc)
                continue
            if msg is not None and msg.is_extended_id == self._extended:
                if msg.arbitration_id == functional:
                    length = msg.data[0] & 0x0F if msg.data else 0
                    if msg.data and msg.data[0] >> 4 == 0 and 0 < length < len(msg.data):
                        request = bytes(msg.data[1 : 1 + length])
                        for ecu, link, rx_id in self._links.values():
                            self._respond(ecu, link, rx_id, request)
                elif msg.arbitration_id in self._links:
                    ecu, link, rx_id = self._links[msg.arbitration_id]
                    for request, _ in link.feed(msg):
                        self._respond(ecu, link, rx_id, request)
            now = time.monotonic()
            for due in [d for d in self._delayed if d[0] <= now]:
                self._delayed.remove(due)
                due[1].send(due[2])
            for _, link, _ in self._links.values():
                link.poll()
