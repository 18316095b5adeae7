"""Every catalogue entry: its map loads against the pinned opendbc, and frames encoded with
that DBC from known motions (braking, reverse, left and right turns, negative accelerations)
decode to the same canonical values, with the right sign and unit."""

from __future__ import annotations

import re
import tomllib

import pytest

from edge_agent import signals as sig
from edge_agent.decode import DbcDecoder
from edge_agent.frames import Frame
from edge_agent.signalmap import SignalMap, load_signal_map
from edge_agent.vehicles import (
    BY_NAME,
    OPENDBC_VERSION,
    VEHICLES,
    Vehicle,
    VehicleError,
    opendbc,
    vehicle,
)

from .bus import BUSES, MOTIONS, Motion, encode_frames, expected

NAMES = [v.name for v in VEHICLES]


@pytest.fixture(scope="module")
def maps() -> dict[str, SignalMap]:
    return {v.name: load_signal_map(v.map_path) for v in VEHICLES}


def test_the_catalogue_covers_the_issue_s_families() -> None:
    dbcs = {v.dbc for v in VEHICLES}
    assert {"toyota_new_mc_pt", "toyota_nodsu_pt", "toyota_tnga_k_pt",
            "honda_civic_touring_2016_can", "honda_crv_touring_2016_can",
            "honda_bosch_radarless", "nissan_leaf_2018", "nissan_x_trail_2017",
            "subaru_global_2017", "mazda_2017", "mazda_3_2019", "hyundai_kia_generic",
            "hyundai_canfd"} <= dbcs  # fmt: skip
    files = {p.stem for p in VEHICLES[0].map_path.parent.glob("*.toml")}
    assert files == set(BY_NAME)


@pytest.mark.parametrize("name", NAMES)
def test_map_loads_against_the_pinned_opendbc_and_names_its_dbc(
    name: str, maps: dict[str, SignalMap]
) -> None:
    entry = vehicle(name)
    doc = tomllib.loads(entry.map_path.read_text(encoding="utf-8"))
    assert doc["dbc"] == f"{opendbc.PREFIX}{entry.dbc}"
    assert maps[name].canonical_names == set(entry.signals())
    assert set(entry.sign_unverified) <= set(entry.signals())
    assert OPENDBC_VERSION == "0.3.1"


@pytest.mark.parametrize("name", NAMES)
def test_every_mapped_signal_cites_how_opendbc_reads_it(name: str) -> None:
    text = vehicle(name).map_path.read_text(encoding="utf-8")
    blocks = re.split(r'^\[signals\."([^"]+)"\]\n', text, flags=re.MULTILINE)[1:]
    assert blocks, "no signals"
    for canonical, body in zip(blocks[::2], blocks[1::2], strict=True):
        comment = "".join(line for line in body.splitlines() if line.startswith("#"))
        assert comment, f"{canonical}: no comment"
        cited = "carstate.py" in comment or "mazda_2017" in comment or "DBC" in comment
        assert cited, f"{canonical}: cites neither carstate.py nor the DBC"


def _tolerance(signal_map: SignalMap, canonical: str) -> float:
    for entry in signal_map.messages.values():
        for rule in entry.rules:
            if rule.canonical == canonical:
                return abs(entry.message.get_signal_by_name(rule.signal).scale * rule.factor) * 0.51
    raise AssertionError(canonical)


@pytest.mark.parametrize("motion", MOTIONS, ids=lambda m: m.name)
@pytest.mark.parametrize("name", NAMES)
def test_known_motion_decodes_to_canonical_values(
    name: str, motion: Motion, maps: dict[str, SignalMap]
) -> None:
    signal_map = maps[name]
    decoder = DbcDecoder(signal_map)
    got: dict[str, float | bool] = {}
    for frame in encode_frames(signal_map, BUSES[name](motion), 12.5):
        for sample in decoder.decode(frame):
            got[sample.name] = sample.value
    assert not decoder.rejected, decoder.rejected
    assert set(got) == signal_map.canonical_names
    want = expected(motion)
    for canonical, value in got.items():
        if canonical in (sig.GEAR, sig.BELTED):
            assert value == want[canonical], canonical
        else:
            assert value == pytest.approx(want[canonical], abs=_tolerance(signal_map, canonical)), (
                canonical
            )


def test_braking_is_negative_and_a_left_turn_positive_on_every_car(
    maps: dict[str, SignalMap],
) -> None:
    """The sign checks the issue asks for, spelled out (the table above holds all values)."""
    braking, _, left, right, _ = MOTIONS
    for name, signal_map in maps.items():
        for motion, check in ((braking, lambda v: v < -3), (left, lambda v: v > 2),
                              (right, lambda v: v < -2)):  # fmt: skip
            decoder = DbcDecoder(signal_map)
            values = {s.name: s.value for f in encode_frames(signal_map, BUSES[name](motion), 0.0)
                      for s in decoder.decode(f)}  # fmt: skip
            lon_or_lat = sig.ACCEL_LON if motion is braking else sig.ACCEL_LAT
            if lon_or_lat in values:
                assert check(values[lon_or_lat]), (name, motion.name, values[lon_or_lat])
            if motion is not braking and sig.STEERING_ANGLE in values:
                assert check(values[sig.STEERING_ANGLE]), (name, motion.name)


def test_reverse_gear_is_minus_one_on_every_car(maps: dict[str, SignalMap]) -> None:
    reverse = MOTIONS[1]
    for name, signal_map in maps.items():
        decoder = DbcDecoder(signal_map)
        gears = [s.value for f in encode_frames(signal_map, BUSES[name](reverse), 0.0)
                 for s in decoder.decode(f) if s.name == sig.GEAR]  # fmt: skip
        assert gears == [-1], name


def test_an_unlisted_gear_value_is_counted_not_decoded(maps: dict[str, SignalMap]) -> None:
    signal_map = maps["toyota_nodsu_pt"]
    message = next(
        r.message for r in signal_map.messages.values() if r.message.name == "GEAR_PACKET"
    )
    values = dict(message.decode(bytes(message.length), decode_choices=False, scaling=True))
    values["GEAR"] = 5  # no VAL_ name: not a position the map knows
    decoder = DbcDecoder(signal_map)
    samples = decoder.decode(Frame(0.0, message.frame_id, message.encode(values, strict=False)))
    assert [s for s in samples if s.name == sig.GEAR] == []
    assert decoder.rejected["unlisted_value"] == 1


def test_can_fd_frames_of_32_bytes_decode(maps: dict[str, SignalMap]) -> None:
    signal_map = maps["hyundai_canfd"]
    lengths = {r.message.name: r.message.length for r in signal_map.messages.values()}
    assert lengths["ESC_02_10ms"] == 32
    frames = encode_frames(signal_map, BUSES["hyundai_canfd"](MOTIONS[0]), 0.0)
    assert max(len(f.data) for f in frames) == 32


def test_an_unknown_vehicle_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(VehicleError, match=r"'corolla'.*toyota_nodsu_pt"):
        vehicle("corolla")


def test_entries_are_frozen() -> None:
    entry: Vehicle = VEHICLES[0]
    with pytest.raises(AttributeError):
        entry.name = "x"  # type: ignore[misc]
