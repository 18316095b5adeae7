"""The polling schedule keeps each PID's rate and never floods; the poller feeds samples."""

from __future__ import annotations

import threading
from collections import Counter

import can
import pytest

from edge_agent.errors import ConfigError
from edge_agent.obd.can_client import IsoTpTransport
from edge_agent.obd.elm327 import Elm327Transport
from edge_agent.obd.errors import AdapterError
from edge_agent.obd.polling import DEFAULT_RATES, MAX_RATE_HZ, Poller, Schedule
from edge_agent.obd.reader import ObdReader
from edge_agent.obd.sim_ecu import EcuSimulator, SimulatedEcu
from edge_agent.obd.sim_elm327 import Elm327Simulator
from edge_agent.samples import Sample


def simulate(schedule: Schedule, seconds: float, step: float = 0.001) -> list[tuple[int, ...]]:
    """Run the schedule on a fake clock, sending whatever is due at every step."""
    requests = []
    for i in range(int(seconds / step)):
        now = i * step
        pids = schedule.due(now)
        if pids:
            schedule.mark(pids, now)
            requests.append(pids)
    return requests


def test_default_rates_are_kept_over_a_minute() -> None:
    requests = simulate(Schedule(DEFAULT_RATES), 60.0)
    counts = Counter(pid for pids in requests for pid in pids)
    for pid, rate in DEFAULT_RATES.items():
        # never above the rate; a request full of 6 PIDs may defer one a step
        assert 0.98 * rate * 60 <= counts[pid] <= rate * 60 + 1, f"PID {pid:02X}"
    assert max(len(pids) for pids in requests) <= 6
    assert 0x0C in DEFAULT_RATES and DEFAULT_RATES[0x0C] == DEFAULT_RATES[0x0D] == 10.0
    assert all(rate < 10.0 for pid, rate in DEFAULT_RATES.items() if pid not in (0x0C, 0x0D))


def test_a_stall_causes_no_catch_up_burst() -> None:
    schedule = Schedule({0x0D: 10.0})
    schedule.mark(schedule.due(0.0), 0.0)
    assert schedule.due(5.0) == (0x0D,)  # 5 s late: one request, not 50
    schedule.mark((0x0D,), 5.0)
    assert schedule.due(5.05) == ()
    assert schedule.next_due() == pytest.approx(5.1)


def test_most_overdue_first_and_six_at_most() -> None:
    rates = {pid: 1.0 for pid in (0x04, 0x05, 0x0F, 0x11, 0x1F, 0x2F, 0x46)} | {0x0D: 10.0}
    schedule = Schedule(rates)
    first = schedule.due(0.0)
    assert len(first) == 6 and first[0] == 0x0D  # all equally overdue: the fastest first
    schedule.mark(first, 0.0)
    assert schedule.due(0.0) == tuple(p for p in rates if p not in first)


def test_unsupported_pids_are_not_polled() -> None:
    schedule = Schedule(DEFAULT_RATES, supported=frozenset({0x0C, 0x0D, 0x20}))
    assert sorted(schedule.pids) == [0x0C, 0x0D]


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({0x0D: 0.0}, "PID 0x0D: 0.0 Hz is outside"),
        ({0x0D: MAX_RATE_HZ * 2}, "PID 0x0D: 40.0 Hz is outside"),
        ({0x0D: float("nan")}, "PID 0x0D: nan Hz"),
        ({0x99: 1.0}, "PID 0x99: not a PID this agent decodes"),
    ],
)
def test_bad_rates_are_refused(rates: dict[int, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Schedule(rates)


def test_poller_feeds_samples_from_the_can_simulator(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([SimulatedEcu()], channel=channel):
        reader = ObdReader(IsoTpTransport(bus))
        reader.discover()
        batches: list[list[Sample]] = []
        poller = Poller(reader, Schedule({0x0C: 10.0, 0x0D: 10.0, 0xA6: 1.0}), batches.append)
        stats = poller.run(threading.Event(), max_requests=3)
    assert stats.requests == 3 and not stats.failures
    assert stats.samples == sum(len(b) for b in batches)
    assert {s.name for s in batches[0]} == {
        "Vehicle.Speed",
        "Vehicle.Powertrain.CombustionEngine.Speed",
        "Vehicle.TraveledDistance",
    }


def test_poller_counts_unanswered_requests(channel: str, bus: can.BusABC) -> None:
    with EcuSimulator([SimulatedEcu(pids=frozenset({0x0C}))], channel=channel):
        reader = ObdReader(IsoTpTransport(bus, timeout=0.05))
        reader.discover()
        batches: list[list[Sample]] = []
        poller = Poller(reader, Schedule({0x0D: 10.0}), batches.append, backoff_s=0.01)
        stats = poller.run(threading.Event(), max_requests=2)
    assert stats.failures == {"no_response": 2}
    assert batches == []


def test_poller_stops_on_adapter_failure() -> None:
    with Elm327Simulator([SimulatedEcu()], reply="BUS INIT: ...ERROR") as sim:
        reader = ObdReader(Elm327Transport(sim.port, timeout=2.0))
        poller = Poller(reader, Schedule({0x0D: 10.0}), lambda samples: None)
        with pytest.raises(AdapterError, match="could not initialise the vehicle bus"):
            poller.run(threading.Event())
        reader.transport.close()


def test_poller_returns_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    reader = ObdReader(transport=None)  # type: ignore[arg-type]  # never asked
    poller = Poller(reader, Schedule({0x0D: 1.0}), lambda s: None)
    assert poller.run(stop).requests == 0
