"""A candump log of a live OBD poll, decoded passively, gives the live poll's samples."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.buses import BusSpec, LiveBuses
from edge_agent.cli import main
from edge_agent.frames import Frame
from edge_agent.obd.can_client import IsoTpTransport
from edge_agent.obd.passive import PassiveObdDecoder
from edge_agent.obd.polling import Poller, Schedule
from edge_agent.obd.reader import ObdReader
from edge_agent.obd.sim_ecu import EcuSimulator, SimulatedEcu
from edge_agent.pipeline import DecodeStage
from edge_agent.replay import Replay
from edge_agent.samples import Sample

DEMO_MAP = Path(__file__).parents[3] / "dbc" / "msp_demo.toml"

RATES = {0x0C: 10.0, 0x0D: 10.0, 0x10: 5.0, 0x5E: 5.0, 0xA6: 1.0, 0x05: 1.0, 0x5A: 5.0}


def poll_simulated_car(channel: str, extended: bool) -> list[Sample]:
    """Discover, read the VIN and poll values from two simulated ECUs; return the samples."""
    ecus = [SimulatedEcu(0x7E8), SimulatedEcu(0x7E9, pids=frozenset({0x0D, 0x05}), vin=None)]
    live: list[Sample] = []
    with EcuSimulator(ecus, channel=channel, extended=extended):
        tester = can.Bus(interface="virtual", channel=channel)
        try:
            # fixed addressing: auto-detection of 29-bit is tested elsewhere and costs a timeout
            reader = ObdReader(IsoTpTransport(tester, "29bit" if extended else "11bit"))
            reader.discover()
            reader.read_vin()  # multi-frame traffic, no samples
            poller = Poller(reader, Schedule(RATES, reader.all_supported()), live.extend)
            poller.run(threading.Event(), max_requests=8)
        finally:
            tester.shutdown()
    return live


def record_live_poll(channel: str, log_path: Path, extended: bool) -> list[Sample]:
    """Poll while a third bus node writes every frame on the channel to a candump log."""
    sniffer = can.Bus(interface="virtual", channel=channel)
    writer = can.Logger(str(log_path))
    notifier = can.Notifier(sniffer, [writer], timeout=0.05)
    try:
        return poll_simulated_car(channel, extended)
    finally:
        notifier.stop()
        writer.stop()
        sniffer.shutdown()


def replay(log_path: Path, decoder: PassiveObdDecoder) -> list[Sample]:
    samples: list[Sample] = []
    for msg in can.LogReader(str(log_path)):
        frame = Frame(msg.timestamp, msg.arbitration_id, bytes(msg.data), msg.is_extended_id)
        if frame.arbitration_id in decoder.ids:  # what ingest does before decode
            samples.extend(decoder.decode(frame))
    return samples


@pytest.mark.parametrize("extended", [False, True])
def test_candump_replay_gives_the_live_samples(
    channel: str, tmp_path: Path, extended: bool
) -> None:
    log_path = tmp_path / "obd.log"
    live = record_live_poll(channel, log_path, extended)
    assert len(live) >= 12
    assert {s.source for s in live} == (
        {"obd:18DAF1E8", "obd:18DAF1E9"} if extended else {"obd:7E8", "obd:7E9"}
    )
    decoder = PassiveObdDecoder()
    replayed = replay(log_path, decoder)
    assert [(s.name, s.value, s.source) for s in replayed] == [
        (s.name, s.value, s.source) for s in live
    ]
    # candump keeps microseconds: the source clock survives the round trip
    assert all(abs(r.timestamp - s.timestamp) < 1e-5 for r, s in zip(replayed, live, strict=True))
    assert decoder.rejected == {}  # the gearbox's refusal of 09 02 is not about live data


@pytest.mark.parametrize("extended", [False, True])
def test_msp_agent_replay_path_gives_the_live_samples(
    channel: str, tmp_path: Path, extended: bool
) -> None:
    log_path = tmp_path / "obd.log"
    live = record_live_poll(channel, log_path, extended)
    replay = Replay(log_path, DEMO_MAP, extra_decoders=[PassiveObdDecoder()])
    replayed = [s for s in replay.samples() if s.source.startswith("obd:")]
    assert [(s.name, s.value, s.source) for s in replayed] == [
        (s.name, s.value, s.source) for s in live
    ]
    assert replay.report.signals["Vehicle.Speed"].count == sum(
        s.name == "Vehicle.Speed" for s in live
    )


def test_live_ingest_of_our_own_polling_gives_the_polled_samples(channel: str) -> None:
    """The agent's live CAN path, listening beside the poller, sees what the poller sees."""
    decoder = PassiveObdDecoder()
    stage = DecodeStage([decoder])
    with LiveBuses([BusSpec("obd", "virtual", channel)], stage.wanted) as live_buses:
        polled = poll_simulated_car(channel, extended=False)
        ingested = list(stage.run(live_buses.frames(idle_timeout=0.5)))
    assert ingested == polled  # timestamps included: both read the same frames
    assert stage.unmapped == 0  # requests and flow control never got past the filters


def frame(data: str, arbitration_id: int = 0x7E8, extended: bool = False, t: float = 0.0) -> Frame:
    return Frame(t, arbitration_id, bytes.fromhex(data), extended)


def test_decodes_single_frame_answer() -> None:
    decoder = PassiveObdDecoder()
    samples = decoder.decode(frame("03410D12AAAAAAAA", t=5.0))
    assert samples == [Sample("Vehicle.Speed", 18.0, 5.0, "obd:7E8")]


def test_ids_cover_11_and_29_bit_responses() -> None:
    ids = PassiveObdDecoder().ids
    assert {0x7E8, 0x7EF, 0x18DAF100, 0x18DAF1FF} <= ids
    assert not {0x7DF, 0x7E0, 0x18DB33F1} & ids
    assert len(ids) == 8 + 256


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([frame("037F0112")], "negative_response"),
        ([frame("0441FF1200")], "malformed"),
        ([frame("03410D12", extended=True)], "wrong_id_width"),
        ([frame("2141424344454647")], "unexpected_consecutive"),
        ([frame("1014490201314847"), frame("03410D12")], "interrupted"),
    ],
)
def test_rejections_are_counted_by_reason(frames: list[Frame], reason: str) -> None:
    decoder = PassiveObdDecoder()
    decoded = [s for f in frames for s in decoder.decode(f)]
    assert decoder.rejected[reason] == 1
    assert all(s.name == "Vehicle.Speed" for s in decoded)


def test_non_live_answers_give_no_samples_and_no_rejection() -> None:
    decoder = PassiveObdDecoder()
    assert decoder.decode(frame("024300")) == []  # mode 03, no codes
    assert not decoder.rejected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0x7E8, 0x7E9, 0x18DAF110]), st.binary(max_size=8)),
        max_size=30,
    )
)
def test_arbitrary_frames_never_raise(frames: list[tuple[int, bytes]]) -> None:
    decoder = PassiveObdDecoder()
    for i, (arbitration_id, data) in enumerate(frames):
        for sample in decoder.decode(Frame(float(i), arbitration_id, data, arbitration_id > 0x7FF)):
            assert sample.source.startswith("obd:")
            assert isinstance(sample.value, float)


def test_replay_cli_obd_flag_decodes_the_recorded_answers(
    channel: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "obd.log"
    live = record_live_poll(channel, log_path, extended=False)
    assert main(["replay", str(log_path), "--map", str(DEMO_MAP), "--json"]) == 0
    without = json.loads(capsys.readouterr().out)
    assert "Vehicle.Speed" not in without["signals"]
    assert main(["replay", str(log_path), "--map", str(DEMO_MAP), "--obd", "--json"]) == 0
    with_obd = json.loads(capsys.readouterr().out)
    assert with_obd["signals"]["Vehicle.Speed"]["count"] == sum(
        s.name == "Vehicle.Speed" for s in live
    )
