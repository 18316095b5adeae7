"""Listen-only OBD-II decoder: samples from recorded or sniffed request/response traffic.

It implements ``edge_agent.frames.FrameDecoder``, so ``msp-agent replay`` (or live ingest) can
feed it the frames of a candump log holding someone else's OBD polling, and get the samples
a live poll of the same answers gives: same names, values, sources and timestamps.
"""

from __future__ import annotations

import logging
from collections import Counter

from ..frames import Frame
from ..samples import Sample
from .errors import MalformedResponseError
from .reader import samples_from_answer
from .reassembly import RESPONSE_11BIT, RESPONSE_29BIT_BASE, Reassembler, ecu_name
from .transport import EcuAnswer

log = logging.getLogger(__name__)

#: Arbitration IDs of OBD answers: 0x7E8-0x7EF and 0x18DAF100-0x18DAF1FF.
RESPONSE_IDS: frozenset[int] = frozenset(RESPONSE_11BIT) | frozenset(
    RESPONSE_29BIT_BASE | low for low in range(0x100)
)


class PassiveObdDecoder:
    """Reassembles ISO-TP answers from ECU response IDs and decodes their mode 01 values.

    Never transmits. Answers to other services (VIN, DTCs) carry no samples and are skipped.
    Rejections, counted in :attr:`rejected` by reason: the ISO-TP ones of
    :class:`~edge_agent.obd.reassembly.Reassembler`, ``negative_response`` (to mode 01),
    ``malformed``
    (a mode 01 answer that does not parse) and ``wrong_id_width`` (an ID in range but with the
    other ID width, e.g. a 29-bit frame whose ID is 0x7E8).
    """

    def __init__(self) -> None:
        self._reassembler = Reassembler()
        self._rejected: Counter[str] = Counter()

    @property
    def ids(self) -> frozenset[int]:
        """The response IDs this decoder reads."""
        return RESPONSE_IDS

    @property
    def rejected(self) -> Counter[str]:
        """Frames and answers refused so far, by reason."""
        return self._rejected + self._reassembler.rejected

    def decode(self, frame: Frame) -> list[Sample]:
        """Return the samples of the answer ``frame`` completes (none for a partial answer)."""
        extended = frame.arbitration_id > 0x7FF
        if frame.is_extended_id != extended:
            self._rejected["wrong_id_width"] += 1
            return []
        ecu = ecu_name(frame.arbitration_id, frame.is_extended_id)
        payload = self._reassembler.feed(ecu, frame.data, frame.timestamp)
        if payload is None:
            return []
        if payload[:1] == b"\x7f" and payload[1:2] == b"\x01":
            self._rejected["negative_response"] += 1
            return []
        if payload[:1] != b"\x41":  # VIN, DTCs, other services: no live values
            return []
        answer = EcuAnswer(ecu, payload, frame.timestamp)
        try:
            return samples_from_answer(answer)
        except MalformedResponseError as exc:
            self._rejected["malformed"] += 1
            log.debug("%s", exc)
            return []
