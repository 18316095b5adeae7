"""What the agent asks a car over OBD-II, on any transport: supported PIDs, VIN, DTCs, values."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from ..samples import Sample
from .diagnostics import PENDING_DTCS, STORED_DTCS, VIN_PID, Vin, parse_dtcs, parse_vin
from .errors import MalformedResponseError, NegativeResponseError, NoResponseError, ObdError
from .pids import MAX_PIDS_PER_REQUEST, PIDS, SUPPORT_PIDS, decode_supported, split_mode01
from .transport import EcuAnswer, ObdTransport

log = logging.getLogger(__name__)

T = TypeVar("T")


def source_name(ecu: str) -> str:
    """Return the ``Sample.source`` for values from ``ecu`` (live poll and log replay agree)."""
    return f"obd:{ecu}"


def samples_from_answer(answer: EcuAnswer) -> list[Sample]:
    """Return the canonical samples in a mode 01 answer, stamped with the answer's timestamp.

    Bitmap PIDs carry no sample. Raises MalformedResponseError for an answer that does not
    parse; a negative response yields no samples.
    """
    if answer.is_negative:
        return []
    return [
        Sample(PIDS[pid].signal, PIDS[pid].decode(data), answer.timestamp, source_name(answer.ecu))
        for pid, data in split_mode01(answer.payload, answer.ecu)
        if pid in PIDS
    ]


def _dtcs_of(answer: EcuAnswer, service: int) -> tuple[str, ...]:
    return tuple(parse_dtcs(answer.payload, service, answer.ecu))


@dataclass(frozen=True, slots=True)
class DtcReport:
    """Trouble codes per ECU: ``stored`` (mode 03) and ``pending`` (mode 07)."""

    stored: dict[str, tuple[str, ...]]
    pending: dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ObdSnapshot:
    """Everything ``msp-agent obd`` reports: identity, capabilities, trouble codes, values.

    ``vin`` and ``dtcs`` are None when they could not be read (the reason is logged);
    ``values`` holds one value per signal, from the lowest-named ECU that answered.
    """

    protocol: str
    ecus: tuple[str, ...]
    supported_pids: frozenset[int]
    vin: Vin | None
    dtcs: DtcReport | None
    values: tuple[Sample, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``msp-agent obd --json`` object (see docs/obd.md)."""

        def merged(codes: dict[str, tuple[str, ...]]) -> list[str]:
            return list(dict.fromkeys(code for ecu in sorted(codes) for code in codes[ecu]))

        return {
            "vin": self.vin.vin if self.vin else None,
            "vin_check_digit_ok": self.vin.check_digit_ok if self.vin else None,
            "protocol": self.protocol,
            "ecus": list(self.ecus),
            "supported_pids": [f"{pid:02X}" for pid in sorted(self.supported_pids)],
            "dtcs": {
                "stored": merged(self.dtcs.stored) if self.dtcs else [],
                "pending": merged(self.dtcs.pending) if self.dtcs else [],
            },
            "values": {s.name: s.value for s in self.values},
        }


@dataclass(slots=True)
class ObdReader:
    """Reads a car through an :class:`ObdTransport`; every method has the transport's deadline.

    Answers that fail to parse, and negative responses, are logged and counted in
    :attr:`rejected` by reason; the answers of the other ECUs are kept.
    """

    transport: ObdTransport
    supported: dict[str, frozenset[int]] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)

    def _ask(self, payload: bytes, expect: frozenset[str] | None = None) -> list[EcuAnswer]:
        answers = self.transport.request(payload, expect)
        if not answers:
            raise NoResponseError(f"no ECU answered {payload.hex(' ').upper()}")
        return answers

    def _positive(self, answers: list[EcuAnswer]) -> list[EcuAnswer]:
        good = []
        for answer in answers:
            if answer.is_negative:
                err = NegativeResponseError(answer.ecu, answer.payload[1], answer.payload[2])
                log.info("%s", err)
                self.rejected["negative_response"] += 1
            else:
                good.append(answer)
        return good

    def _parsed(
        self, answers: list[EcuAnswer], parse: Callable[[EcuAnswer], T]
    ) -> Iterator[tuple[str, T]]:
        """Yield ``(ecu, parse(answer))`` for the positive answers; count the malformed ones."""
        for answer in self._positive(answers):
            try:
                yield answer.ecu, parse(answer)
            except MalformedResponseError as exc:
                log.warning("%s", exc)
                self.rejected["malformed"] += 1

    def discover(self) -> dict[str, frozenset[int]]:
        """Walk the supported-PID bitmaps (01 00, 01 20, ...) of every ECU; return PIDs per ECU."""
        supported: dict[str, set[int]] = {}
        for base in SUPPORT_PIDS:
            expect = frozenset(ecu for ecu, pids in supported.items() if base in pids)
            if base and not expect:
                break
            answers = self._ask(bytes([0x01, base]), expect or None)
            for ecu, pairs in self._parsed(answers, lambda a: split_mode01(a.payload, a.ecu)):
                for pid, data in pairs:
                    if pid in SUPPORT_PIDS:
                        supported.setdefault(ecu, set()).update(decode_supported(pid, data))
        self.supported = {ecu: frozenset(pids) for ecu, pids in sorted(supported.items())}
        return self.supported

    def all_supported(self) -> frozenset[int]:
        """PIDs supported by at least one ECU (after :meth:`discover`)."""
        return frozenset().union(*self.supported.values()) if self.supported else frozenset()

    def read_vin(self) -> Vin:
        """Return the VIN (mode 09 PID 02); raises ObdError when no ECU gives a valid one."""
        problems: list[str] = []
        for answer in self._positive(self._ask(bytes([0x09, VIN_PID]))):
            try:
                return parse_vin(answer.payload, answer.ecu)
            except MalformedResponseError as exc:
                self.rejected["malformed"] += 1
                problems.append(str(exc))
        raise MalformedResponseError("; ".join(problems) or "every ECU refused the VIN request")

    def read_dtcs(self) -> DtcReport:
        """Return stored (mode 03) and pending (mode 07) codes of every ECU that answers."""
        found: dict[int, dict[str, tuple[str, ...]]] = {}
        for service in (STORED_DTCS, PENDING_DTCS):
            found[service] = {}
            answers = self._ask(bytes([service]))
            parse = partial(_dtcs_of, service=service)
            for ecu, codes in self._parsed(answers, parse):
                # += keeps every code when answers share a name (ELM327 with headers off)
                found[service][ecu] = found[service].get(ecu, ()) + codes
        return DtcReport(stored=found[STORED_DTCS], pending=found[PENDING_DTCS])

    def snapshot(self) -> ObdSnapshot:
        """Discover, then read VIN, DTCs and every supported value once.

        Raises NoResponseError when no ECU answers discovery; a VIN or DTC failure is logged
        and leaves that field None.
        """
        supported = self.discover()
        vin: Vin | None = None
        dtcs: DtcReport | None = None
        try:
            vin = self.read_vin()
        except ObdError as exc:
            log.warning("VIN: %s", exc)
        try:
            dtcs = self.read_dtcs()
        except ObdError as exc:
            log.warning("DTCs: %s", exc)
        pids = sorted(p for p in self.all_supported() if p in PIDS)
        first: dict[str, Sample] = {}
        for sample in sorted(self.read_values(pids), key=lambda s: s.source):
            first.setdefault(sample.name, sample)
        return ObdSnapshot(
            protocol=self.transport.protocol,
            ecus=tuple(supported),
            supported_pids=self.all_supported(),
            vin=vin,
            dtcs=dtcs,
            values=tuple(first.values()),
        )

    def read_values(self, pids: list[int] | tuple[int, ...]) -> list[Sample]:
        """Return samples for ``pids`` (requested at most 6 at a time) from every ECU answering.

        Raises NoResponseError only when no ECU answers any of the requests.
        """
        samples: list[Sample] = []
        answered = False
        for i in range(0, len(pids), MAX_PIDS_PER_REQUEST):
            chunk = tuple(pids[i : i + MAX_PIDS_PER_REQUEST])
            expect = frozenset(e for e, known in self.supported.items() if known & set(chunk))
            answers = self.transport.request(bytes([0x01, *chunk]), expect or None)
            answered = answered or bool(answers)
            for _, found in self._parsed(answers, samples_from_answer):
                samples.extend(found)
        if pids and not answered:
            raise NoResponseError(f"no ECU answered mode 01 PIDs {[f'{p:02X}' for p in pids]}")
        return samples
