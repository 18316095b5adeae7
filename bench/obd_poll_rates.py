"""Achieved OBD polling rates against the configured ones, over ISO-TP and through an ELM327.

Polls the simulators for a few seconds with the default rates and prints, per PID, the
samples per second achieved divided by the configured rate (1.00 = kept; never above 1),
plus requests per second, the bus-load side of "never floods".

    .venv/bin/python bench/obd_poll_rates.py [SECONDS]
"""

from __future__ import annotations

import sys
import threading
from collections import Counter

import can

from edge_agent.obd.can_client import IsoTpTransport
from edge_agent.obd.elm327 import Elm327Transport
from edge_agent.obd.pids import PIDS
from edge_agent.obd.polling import DEFAULT_RATES, Poller, Schedule
from edge_agent.obd.reader import ObdReader
from edge_agent.obd.sim_ecu import EcuSimulator, SimulatedEcu
from edge_agent.obd.sim_elm327 import Elm327Simulator
from edge_agent.obd.transport import ObdTransport
from edge_agent.samples import Sample

SIGNAL_PID = {spec.signal: pid for pid, spec in PIDS.items()}


def run(transport: ObdTransport, seconds: float) -> tuple[Counter[int], int]:
    reader = ObdReader(transport)
    reader.discover()
    counts: Counter[int] = Counter()

    def sink(samples: list[Sample]) -> None:
        counts.update(SIGNAL_PID[s.name] for s in samples)

    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    stats = Poller(reader, Schedule(DEFAULT_RATES, reader.all_supported()), sink).run(stop)
    return counts, stats.requests


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    results = {}
    with EcuSimulator([SimulatedEcu()], channel="bench-obd"):
        bus = can.Bus(interface="virtual", channel="bench-obd")
        results["iso-tp"] = run(IsoTpTransport(bus), seconds)
        bus.shutdown()
    with Elm327Simulator([SimulatedEcu()]) as sim:
        transport = Elm327Transport(sim.port)
        results["elm327"] = run(transport, seconds)
        transport.close()
    print(f"{'PID':>4} {'Hz':>5}  " + "  ".join(f"{name:>8}" for name in results))
    for pid, rate in sorted(DEFAULT_RATES.items(), key=lambda kv: -kv[1]):
        ratios = [counts[pid] / seconds / rate for counts, _ in results.values()]
        print(f"  {pid:02X} {rate:5.1f}  " + "  ".join(f"{r:8.2f}" for r in ratios))
    print("requests/s  " + "  ".join(f"{n / seconds:8.1f}" for _, n in results.values()))


if __name__ == "__main__":
    main()
