"""``msp-agent obd``: read VIN, supported PIDs, DTCs and live values over ISO-TP or an ELM327."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from typing import Any

import can

from ..errors import ConfigError
from ..obd.can_client import RESPONSE_FILTERS, IsoTpTransport
from ..obd.elm327 import BAUD_RATES, Elm327Transport
from ..obd.errors import ObdError
from ..obd.pids import PIDS
from ..obd.polling import DEFAULT_RATES, Poller, Schedule
from ..obd.reader import ObdReader
from ..obd.sim_ecu import EcuSimulator, SimulatedEcu
from ..obd.sim_elm327 import QUIRKS, Elm327Simulator, combine_quirks
from ..obd.transport import ObdTransport
from ..samples import Sample

log = logging.getLogger(__name__)


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``obd``."""
    parser = subparsers.add_parser(
        "obd",
        help="read VIN, supported PIDs, DTCs and live values over OBD-II",
        description=(
            "Query the car's OBD-II port: over CAN with ISO-TP (11/29-bit addressing detected)"
            " or through an ELM327 adapter on a serial port, Bluetooth SPP device or"
            " socket://host:port URL. Exit code 2 when nothing answers."
        ),
    )
    link = parser.add_mutually_exclusive_group(required=True)
    link.add_argument("--serial", metavar="PORT", help="ELM327 port or pyserial URL")
    link.add_argument("--can", metavar="CHANNEL", help="CAN channel (e.g. can0)")
    link.add_argument(
        "--simulate",
        choices=("can", "can29", "elm327"),
        help="no car: run against the built-in ECU simulator (engine + gearbox) over ISO-TP"
        " on a virtual bus (11 or 29-bit) or behind the ELM327 simulator on a pty",
    )
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        choices=sorted(QUIRKS),
        metavar="NAME",
        help="with --simulate elm327: make the simulated adapter behave like a clone"
        f" (repeatable): {', '.join(sorted(QUIRKS))}",
    )
    parser.add_argument(
        "--baud",
        type=int,
        default=None,
        help="ELM327 serial speed (default: try "
        f"{', '.join(map(str, BAUD_RATES))} until the adapter answers readably)",
    )
    parser.add_argument(
        "--interface", default="socketcan", help="python-can interface for --can (socketcan)"
    )
    parser.add_argument(
        "--addressing", choices=("auto", "11bit", "29bit"), default="auto", help="CAN IDs"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="answer deadline per request"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--poll",
        type=float,
        default=0.0,
        metavar="S",
        help="afterwards poll live values for S seconds, one JSON sample per line",
    )
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="PID=HZ",
        help="polling rate of a mode 01 PID in hex, e.g. 0D=20 (repeatable; 0 stops it)",
    )
    parser.set_defaults(func=_do_obd)


def poll_rates(specs: list[str]) -> dict[int, float]:
    """Return the default rates overridden by ``PID=HZ`` specs; ConfigError names a bad one."""
    rates = dict(DEFAULT_RATES)
    for spec in specs:
        pid_text, sep, hz_text = spec.partition("=")
        try:
            pid, hz = int(pid_text, 16), float(hz_text)
        except ValueError:
            pid, hz = -1, 0.0
        if not sep or not 0 <= pid <= 0xFF:
            raise ConfigError(f"--rate {spec!r}: expected PID=HZ with a hex PID, e.g. 0D=10")
        if hz == 0:
            rates.pop(pid, None)
        else:
            rates[pid] = hz
    Schedule(rates)  # raises ConfigError naming an unknown PID or a rate out of range
    return rates


def _open(args: argparse.Namespace) -> ObdTransport:
    if args.serial:
        if args.timeout is None:
            return Elm327Transport(args.serial, baudrate=args.baud)
        # --timeout bounds an answer; a protocol search keeps its own, longer deadline
        return Elm327Transport(args.serial, baudrate=args.baud, timeout=args.timeout)
    try:
        bus = can.Bus(interface=args.interface, channel=args.can, can_filters=RESPONSE_FILTERS)
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        raise ObdError(f"cannot open CAN {args.interface} channel {args.can}: {exc}") from exc
    if args.timeout is None:
        return IsoTpTransport(bus, addressing=args.addressing, own_bus=True)
    return IsoTpTransport(bus, addressing=args.addressing, timeout=args.timeout, own_bus=True)


def _print_text(report: dict[str, Any]) -> None:  # the JSON form, as text
    check = {True: "check digit ok", False: "CHECK DIGIT FAILS", None: "no check digit"}
    print(f"protocol:       {report['protocol']}")
    elm = report["elm327"]
    if elm is not None:
        number = elm["protocol_number"]
        found = f", protocol {number}{' (found by search)' if elm['protocol_auto'] else ''}"
        print(
            f"adapter:        {elm['version']} at {elm['baudrate']} baud"
            f"{found if number else ''}, headers {'on' if elm['headers'] else 'off'},"
            f" {elm['pids_per_request']} PID(s) per request"
        )
        if elm["errors"]:
            counts = ", ".join(f"{kind}={n}" for kind, n in elm["errors"].items())
            print(f"adapter errors: {counts}")
    print(f"ECUs:           {', '.join(report['ecus'])}")
    print(f"VIN:            {report['vin']} ({check[report['vin_check_digit_ok']]})")
    print(f"supported PIDs: {' '.join(report['supported_pids'])}")
    print(f"stored DTCs:    {' '.join(report['dtcs']['stored']) or '-'}")
    print(f"pending DTCs:   {' '.join(report['dtcs']['pending']) or '-'}")
    print(f"permanent DTCs: {' '.join(report['dtcs']['permanent']) or '-'}")
    print(f"MIL:            {({True: 'on', False: 'off', None: 'unknown'})[report['mil']]}")
    units = {p.signal: p.unit for p in PIDS.values()}
    for name, value in report["values"].items():
        print(f"{name} = {value:g} {units.get(name, '')}")


def _print_sample_lines(samples: list[Sample]) -> None:
    for s in samples:
        line = {"name": s.name, "value": s.value, "timestamp": s.timestamp, "source": s.source}
        print(json.dumps(line), flush=True)


def _do_obd(args: argparse.Namespace) -> int:
    rates = poll_rates(args.rate)
    if args.quirk and args.simulate != "elm327":
        raise ConfigError("--quirk shapes the simulated adapter: it needs --simulate elm327")
    if args.simulate is None:
        return _run(args, rates)
    ecus = [SimulatedEcu(0x7E8), SimulatedEcu(0x7E9, pids=frozenset({0x0D, 0x05}), vin=None)]
    extended = args.simulate == "can29"
    if args.simulate == "elm327":
        try:
            quirks = combine_quirks(args.quirk)
        except ValueError as exc:
            raise ConfigError(f"--quirk: {exc}") from exc
        with Elm327Simulator(ecus, quirks=quirks) as elm:
            return _run(argparse.Namespace(**{**vars(args), "serial": elm.port}), rates)
    with EcuSimulator(ecus, channel="msp-obd-sim", extended=extended):
        overrides = {"can": "msp-obd-sim", "interface": "virtual"}
        return _run(argparse.Namespace(**{**vars(args), **overrides}), rates)


def _run(args: argparse.Namespace, rates: dict[int, float]) -> int:
    transport = _open(args)
    try:
        reader = ObdReader(transport)
        report = reader.snapshot().to_json()
        report["elm327"] = None
        if isinstance(transport, Elm327Transport):
            status = transport.status().to_json()
            report["elm327"] = status | {"pids_per_request": reader.pids_per_request}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            _print_text(report)
        sys.stdout.flush()
        if args.poll > 0:
            schedule = Schedule(rates, reader.all_supported())
            poller = Poller(reader, schedule, _print_sample_lines)
            stop = threading.Event()
            timer = threading.Timer(args.poll, stop.set)
            timer.start()
            try:
                stats = poller.run(stop)
            finally:
                timer.cancel()
            log.info("polled %d requests, %d samples", stats.requests, stats.samples)
            for reason, count in sorted(stats.failures.items()):
                log.warning("polling: %d requests failed (%s)", count, reason)
    finally:
        transport.close()
    return 0
