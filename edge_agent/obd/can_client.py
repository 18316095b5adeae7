"""OBD-II over ISO-TP on a CAN bus: functional requests, every ECU's answer, 11/29-bit detection."""

from __future__ import annotations

import logging
import time
from typing import Literal

import can

from .errors import MalformedResponseError, NoResponseError, ObdError
from .isotp_link import SEND_TIMEOUT_S, IsoTpLink
from .reassembly import (
    FUNCTIONAL_11BIT,
    FUNCTIONAL_29BIT,
    ecu_name,
    is_response_id,
    physical_request_id,
    single_frame,
)
from .transport import EcuAnswer

log = logging.getLogger(__name__)

Addressing = Literal["auto", "11bit", "29bit"]

#: How long to wait for a first answer. ISO 15765-4 P2max is 50 ms; a gateway sharing a
#: loaded CPU needs slack. A request nobody answers costs this much.
DEFAULT_TIMEOUT_S = 1.0
#: After an answer, how long other ECUs still get: all ECUs answer within P2 of the request,
#: so the rest arrive together; this bounds a request some expected ECU leaves unanswered.
SETTLE_S = 0.1
#: ECUs answering 0x78 (response pending) may take this long (ISO 15765-4 P2*max).
PENDING_TIMEOUT_S = 5.0
#: Hard cap on one request, multi-frame answers included: no request ever blocks longer.
MAX_REQUEST_S = 6.0

#: Kernel/driver receive filters for a bus used only for OBD: the ECUs' response IDs.
RESPONSE_FILTERS: list[dict[str, int | bool]] = [
    {"can_id": 0x7E8, "can_mask": 0x7F8, "extended": False},
    {"can_id": 0x18DAF100, "can_mask": 0x1FFFFF00, "extended": True},
]

_DETECT = bytes([0x01, 0x00])
_PROTOCOL = {False: "ISO 15765-4 CAN (11 bit ID)", True: "ISO 15765-4 CAN (29 bit ID)"}


class IsoTpTransport:
    """OBD-II requests on a python-can bus the caller opened (and closes, unless ``own_bus``).

    Before the first request, ``01 00`` finds the ECUs (with ``addressing="auto"`` on 11-bit
    0x7DF and, when nobody answers, on 29-bit 0x18DB33F1); they are remembered, so later
    requests return as soon as each of them has answered. Several ECUs answering is normal and
    each answer is kept. Raises NoResponseError when no ECU answers on either addressing.
    A bus opened only for OBD should carry :data:`RESPONSE_FILTERS`, so the rest of the
    vehicle's traffic never reaches Python.
    """

    def __init__(
        self,
        bus: can.BusABC,
        addressing: Addressing = "auto",
        timeout: float = DEFAULT_TIMEOUT_S,
        own_bus: bool = False,
    ) -> None:
        self._bus = bus
        self._own_bus = own_bus
        self._timeout = timeout
        self._extended: bool | None = None if addressing == "auto" else addressing == "29bit"
        self._links: dict[str, IsoTpLink] = {}
        self.ecus: tuple[str, ...] = ()
        self.isotp_errors: list[str] = []

    @property
    def protocol(self) -> str:
        """The ISO 15765-4 variant in use; ``unknown`` before detection."""
        return "unknown" if self._extended is None else _PROTOCOL[self._extended]

    def detect(self) -> tuple[str, ...]:
        """Find the addressing and the ECUs that answer ``01 00``; return the ECU names."""
        self._detect()
        return self.ecus

    def _detect(self) -> list[EcuAnswer]:
        candidates = [False, True] if self._extended is None else [self._extended]
        for extended in candidates:
            answers = self._exchange(_DETECT, extended)
            if answers:
                self._extended = extended
                self.ecus = tuple(sorted({a.ecu for a in answers}))
                log.info("OBD on %s: ECUs %s", _PROTOCOL[extended], ", ".join(self.ecus))
                return answers
        tried = " nor ".join(f"{'29' if e else '11'}-bit" for e in candidates)
        raise NoResponseError(f"no ECU answered 01 00 on {tried} functional addressing")

    def request(self, payload: bytes, expect: frozenset[str] | None = None) -> list[EcuAnswer]:
        """Send ``payload`` functionally; return every ECU's answer (empty when none in time).

        Returns early once every ECU in ``expect`` (default: every ECU found by
        :meth:`detect`) has answered.
        """
        if not self.ecus:
            answers = self._detect()
            if payload == _DETECT:
                return answers
        assert self._extended is not None
        return self._exchange(payload, self._extended, expect)

    def close(self) -> None:
        """Forget ISO-TP state; shut the bus down when this transport owns it."""
        self._links.clear()
        if self._own_bus:
            self._bus.shutdown()

    def _link(self, msg: can.Message) -> IsoTpLink:
        name = ecu_name(msg.arbitration_id, msg.is_extended_id)
        link = self._links.get(name)
        if link is None:
            txid = physical_request_id(msg.arbitration_id, msg.is_extended_id)
            link = IsoTpLink(self._bus, txid, msg.arbitration_id, msg.is_extended_id)
            self._links[name] = link
        return link

    def _exchange(
        self, payload: bytes, extended: bool, expect: frozenset[str] | None = None
    ) -> list[EcuAnswer]:
        expected = set(self.ecus if expect is None else expect)
        for _ in range(
            10_000
        ):  # drop answers to earlier requests (too late); bounded on a busy bus
            if self._bus.recv(timeout=0) is None:
                break
        for link in self._links.values():
            link.reset()
        arbitration_id = FUNCTIONAL_29BIT if extended else FUNCTIONAL_11BIT
        try:
            self._bus.send(
                can.Message(
                    arbitration_id=arbitration_id,
                    data=single_frame(payload),
                    is_extended_id=extended,
                ),
                timeout=SEND_TIMEOUT_S,
            )
        except can.CanError as exc:
            raise ObdError(f"cannot send OBD request {payload.hex()}: {exc}") from exc
        answers = self._collect(expected)
        errors = [f"ECU {name}: {err}" for name, link in self._links.items() for err in link.errors]
        for link in self._links.values():
            link.errors.clear()
        self.isotp_errors.extend(errors)
        if errors and not answers:
            raise MalformedResponseError(f"request {payload.hex()}: {'; '.join(errors)}")
        for err in errors:
            log.warning("ISO-TP during request %s: %s", payload.hex(), err)
        return answers

    def _collect(self, expected: set[str]) -> list[EcuAnswer]:
        """Receive answers until the expected ECUs answered or the deadline passed.

        The deadline is the timeout for a first answer, then at most :data:`SETTLE_S` after
        the first answer, except while an ECU that said "response pending" has not answered.
        """
        start = time.monotonic()
        deadline = start + self._timeout
        pending_until = 0.0
        pending: set[str] = set()
        answers: list[EcuAnswer] = []
        answered: set[str] = set()
        while True:
            now = time.monotonic()
            busy = any(link.busy for link in self._links.values())
            limit = max(deadline, pending_until) if pending else deadline
            if now - start > MAX_REQUEST_S or (now >= limit and not busy):
                return answers
            if expected and answered >= expected and not busy:
                return answers
            msg = self._bus.recv(timeout=0.005 if busy else min(max(limit - now, 0.0), 0.01))
            if msg is None:
                for link in self._links.values():
                    link.poll()
                continue
            if msg.is_error_frame or not is_response_id(msg.arbitration_id, msg.is_extended_id):
                continue
            name = ecu_name(msg.arbitration_id, msg.is_extended_id)
            for data, timestamp in self._link(msg).feed(msg):
                if data[:1] == b"\x7f" and data[2:3] == b"\x78":
                    pending.add(name)
                    pending_until = time.monotonic() + PENDING_TIMEOUT_S
                    continue
                pending.discard(name)
                answers.append(EcuAnswer(name, data, timestamp))
                answered.add(name)
                deadline = min(deadline, time.monotonic() + SETTLE_S)
