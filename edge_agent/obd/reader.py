"""What the agent asks a car over OBD-II, on any transport: supported PIDs, VIN, DTCs, values."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from msp_protocol import bodies

from ..samples import Sample
from .diagnostics import (
    PENDING_DTCS,
    PERMANENT_DTCS,
    STORED_DTCS,
    VIN_PID,
    Vin,
    parse_dtcs,
    parse_vin,
)
from .errors import (
    AdapterReplyError,
    MalformedResponseError,
    NegativeResponseError,
    NoResponseError,
    ObdError,
)
from .pids import (
    MAX_PIDS_PER_REQUEST,
    MONITOR_STATUS,
    PIDS,
    SUPPORT_PIDS,
    decode_monitor_status,
    decode_supported,
    split_mode01,
)
from .transport import EcuAnswer, ObdTransport

log = logging.getLogger(__name__)

T = TypeVar("T")

#: PID 0xA6, the odometer, for the ``dtc`` record.
ODOMETER_PID = 0xA6


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
    """Trouble codes per ECU: ``stored`` (mode 03), ``pending`` (07), ``permanent`` (0A).

    ``mil`` is the check-engine lamp (PID 01) of any ECU, None when none reported it.
    """

    stored: dict[str, tuple[str, ...]]
    pending: dict[str, tuple[str, ...]]
    permanent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mil: bool | None = None

    def codes(self, status: str) -> list[str]:
        """The codes of one status (``stored``, ``pending``, ``permanent``) over all ECUs."""
        by_ecu: dict[str, tuple[str, ...]] = getattr(self, status)
        return list(dict.fromkeys(code for ecu in sorted(by_ecu) for code in by_ecu[ecu]))

    def body(self, odometer_km: float | None) -> bodies.Dtc:
        """The ``dtc`` record body; with no MIL reading, MIL is taken as on iff codes are stored."""
        codes = tuple(
            bodies.TroubleCode(code, status)
            for status in ("stored", "pending", "permanent")
            for code in self.codes(status)
        )
        mil = self.mil if self.mil is not None else bool(self.codes("stored"))
        return bodies.Dtc(codes=codes, mil=mil, odometer_km=odometer_km)


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

        return {
            "vin": self.vin.vin if self.vin else None,
            "vin_check_digit_ok": self.vin.check_digit_ok if self.vin else None,
            "protocol": self.protocol,
            "ecus": list(self.ecus),
            "supported_pids": [f"{pid:02X}" for pid in sorted(self.supported_pids)],
            "dtcs": {
                status: self.dtcs.codes(status) if self.dtcs else []
                for status in ("stored", "pending", "permanent")
            },
            "mil": self.dtcs.mil if self.dtcs else None,
            "values": {s.name: s.value for s in self.values},
        }


@dataclass(slots=True)
class ObdReader:
    """Reads a car through an :class:`ObdTransport`; every method has the transport's deadline.

    Answers that fail to parse, and negative responses, are logged and counted in
    :attr:`rejected` by reason; the answers of the other ECUs are kept.

    :attr:`pids_per_request` starts at 6 and drops to 1, for the rest of the connection, once
    a request of several PIDs is refused (``?``), unanswered while single PIDs are answered,
    or answered for fewer of the PIDs than the ECU advertises (adapters and ECUs that take
    one PID at a time).
    """

    transport: ObdTransport
    supported: dict[str, frozenset[int]] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    pids_per_request: int = MAX_PIDS_PER_REQUEST

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

    def read_mil(self) -> bool | None:
        """Return whether any ECU has the check-engine lamp on (PID 01); None if none says."""
        answers = self.transport.request(bytes([0x01, MONITOR_STATUS]))
        states = [
            decode_monitor_status(data)[0]
            for _, pairs in self._parsed(answers, lambda a: split_mode01(a.payload, a.ecu))
            for pid, data in pairs
            if pid == MONITOR_STATUS
        ]
        return any(states) if states else None

    def read_dtcs(self) -> DtcReport:
        """Return stored (03), pending (07) and permanent (0A) codes and the MIL state.

        Raises NoResponseError when no ECU answers mode 03 or 07; cars without mode 0A
        (before 2010) or PID 01 just leave those empty.
        """
        found: dict[int, dict[str, tuple[str, ...]]] = {}
        for service in (STORED_DTCS, PENDING_DTCS, PERMANENT_DTCS):
            found[service] = {}
            answers = self.transport.request(bytes([service]))
            if not answers and service != PERMANENT_DTCS:
                raise NoResponseError(f"no ECU answered {service:02X}")
            parse = partial(_dtcs_of, service=service)
            for ecu, codes in self._parsed(answers, parse):
                # += keeps every code when answers share a name (ELM327 with headers off)
                found[service][ecu] = found[service].get(ecu, ()) + codes
        return DtcReport(
            stored=found[STORED_DTCS],
            pending=found[PENDING_DTCS],
            permanent=found[PERMANENT_DTCS],
            mil=self.read_mil(),
        )

    def dtc_body(self) -> bodies.Dtc:
        """Read trouble codes, MIL and (when supported) the odometer: a ``dtc`` record body."""
        report = self.read_dtcs()
        odometer = None
        if ODOMETER_PID in self.all_supported():
            readings = [s.value for s in self.read_values([ODOMETER_PID])]
            odometer = float(readings[0]) if readings else None
        return report.body(odometer)

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
        """Return samples for ``pids`` from every ECU answering.

        PIDs are requested :attr:`pids_per_request` at a time. Raises NoResponseError only
        when no ECU answers any of the requests.
        """
        samples: list[Sample] = []
        answered = False
        rest = tuple(pids)
        while rest:
            chunk, rest = rest[: self.pids_per_request], rest[self.pids_per_request :]
            found, chunk_answered = self._read_chunk(chunk)
            samples.extend(found)
            answered = answered or chunk_answered
        if pids and not answered:
            raise NoResponseError(f"no ECU answered mode 01 PIDs {[f'{p:02X}' for p in pids]}")
        return samples

    def _expected(self, pids: tuple[int, ...]) -> frozenset[str]:
        return frozenset(e for e, known in self.supported.items() if known & set(pids))

    def _read_chunk(self, chunk: tuple[int, ...]) -> tuple[list[Sample], bool]:
        """Samples for one request's PIDs and whether any ECU answered; falls back to one
        PID per request when several in one are refused, unanswered or answered in part."""
        expect = self._expected(chunk)
        try:
            answers = self.transport.request(bytes([0x01, *chunk]), expect or None)
        except AdapterReplyError as exc:
            if exc.kind != "refused" or len(chunk) == 1:
                raise
            self._one_pid_per_request(f"a request of {len(chunk)} PIDs was refused ({exc})")
            return self._read_singly(chunk)
        if not answers:
            if len(chunk) == 1 or not expect:
                return [], False
            samples, answered = self._read_singly(chunk)
            if answered:
                self._one_pid_per_request(f"no answer to {len(chunk)} PIDs, answers to one")
            return samples, answered
        samples = []
        for _, found in self._parsed(answers, samples_from_answer):
            samples.extend(found)
        if len(chunk) == 1:
            return samples, True
        # PIDs an answering ECU advertises but left out: it (or the adapter) takes one at a time
        have = {(sample.source, sample.name) for sample in samples}
        answering = {answer.ecu for answer in self._positive(answers)}

        def left_out(ecu: str) -> set[int]:
            known = self.supported.get(ecu, frozenset()) & set(chunk) & PIDS.keys()
            return {p for p in known if (source_name(ecu), PIDS[p].signal) not in have}

        short = sorted(ecu for ecu in answering if left_out(ecu))
        if short:
            self._one_pid_per_request(f"{', '.join(short)} answered only part of {len(chunk)} PIDs")
            # ask again for what any ECU advertising them lacks, keep only what was lacking
            again = sorted(set().union(*(left_out(ecu) for ecu in self.supported)))
            more, _ = self._read_singly(tuple(again))
            samples.extend(s for s in more if (s.source, s.name) not in have)
        return samples, True

    def _read_singly(self, pids: tuple[int, ...]) -> tuple[list[Sample], bool]:
        """Request ``pids`` one by one; return the samples and whether any ECU answered."""
        samples: list[Sample] = []
        answered = False
        for pid in pids:
            answers = self.transport.request(bytes([0x01, pid]), self._expected((pid,)) or None)
            answered = answered or bool(answers)
            for _, found in self._parsed(answers, samples_from_answer):
                samples.extend(found)
        return samples, answered

    def _one_pid_per_request(self, reason: str) -> None:
        if self.pids_per_request != 1:
            log.warning("%s: asking one PID per request from now on", reason)
            self.pids_per_request = 1
