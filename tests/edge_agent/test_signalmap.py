"""Signal maps: the demo map, several DBCs, lenient loading, and every rejection at load."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.errors import ConfigError
from edge_agent.signalmap import load_signal_map
from edge_agent.signals import CANONICAL
from tests.conftest import DATA, DEMO_DBC, DEMO_MAP

MAPS = DATA / "maps"


def test_demo_map_carries_every_canonical_signal() -> None:
    signal_map = load_signal_map(DEMO_MAP)
    assert signal_map.canonical_names == frozenset(CANONICAL)
    assert signal_map.warnings == ()
    extended = [r.message for r in signal_map.messages.values() if r.message.is_extended_frame]
    assert {m.name for m in extended} == {"ODOMETER", "GNSS_POSITION"}


def test_several_dbcs_and_lenient_loading() -> None:
    signal_map = load_signal_map(MAPS / "good.toml")
    names = {r.message.name for r in signal_map.messages.values()}
    assert names == {"MOTION_BE", "J1939_SPEED", "MUXED", "BODY"}
    # The overlap lives in a message the map does not use: a warning, not an error.
    assert len(signal_map.warnings) == 1
    assert "SLOPPY_UNUSED" in signal_map.warnings[0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "missing_message",
            r"missing_message\.toml.*Vehicle\.Speed.*NO_SUCH_MESSAGE.*test_vehicle",
        ),
        ("missing_signal", r"missing_signal\.toml.*NoSuchSignal.*MOTION_BE"),
        ("unknown_unit", r"unknown_unit\.toml.*Vehicle\.Speed.*furlongs/fortnight"),
        ("wrong_dimension", r"wrong_dimension\.toml.*'rpm'.*'km/h'"),
        ("unknown_canonical", r"unknown_canonical\.toml.*Vehicle\.Sped.*not a canonical"),
        ("unparsable_dbc", r"unparsable_dbc\.toml.*cannot parse DBC.*not_a\.dbc"),
        ("overlap_used", r"overlap_used\.toml.*'A' and 'B'.*overlap"),
        ("bad_toml", r"bad_toml\.toml: invalid TOML"),
    ],
)
def test_broken_maps_are_rejected_naming_file_and_entry(name: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_signal_map(MAPS / f"{name}.toml")


def test_missing_map_and_missing_dbc(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="signal map not found"):
        load_signal_map(tmp_path / "nope.toml")
    (tmp_path / "m.toml").write_text(
        'dbc = "gone.dbc"\n[signals."Vehicle.Speed"]\nmessage="A"\nsignal="B"\nunit="km/h"\n'
    )
    with pytest.raises(ConfigError, match=r"m\.toml: DBC file .*gone\.dbc not found"):
        load_signal_map(tmp_path / "m.toml")


def test_invert_must_be_boolean(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(
        f'dbc = "{DATA / "test_vehicle.dbc"}"\n[signals."Vehicle.Speed"]\n'
        'message="MOTION_BE"\nsignal="SpeedMph"\nunit="mph"\ninvert="yes"\n'
    )
    with pytest.raises(ConfigError, match="'invert' must be true or false"):
        load_signal_map(tmp_path / "m.toml")


def demo_map_in(directory: Path, text: str | bytes) -> Path:
    """A copy of the demo map's DBC in ``directory`` and a map ``text`` beside it."""
    (directory / "msp_demo.dbc").write_bytes(DEMO_DBC.read_bytes())
    path = directory / "m.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # accepted silently before: a misspelt key did nothing
        ('buss = "can0"\n', r"m\.toml: buss: unknown key \(known at the top: bus, dbc, "
         r"signals, vehicle_class"),
        ("bus = 0\n", r"m\.toml: bus: expected the name of a bus or log channel, got 0"),
        ("signal = 1\n", r"m\.toml: signal: unknown key"),
        ('vehicle_class = "bus"\n', r"m\.toml: vehicle_class: expected one of car, "
         r"light_truck, heavy_truck, got 'bus'"),
        ("vehicle_class = 1e400\n", r"m\.toml: vehicle_class: expected one of .* got inf"),
        ("x = " + "9" * 5000 + "\n", r"m\.toml: line 1 \(x\): an integer of 5000 digits"),
        ("x = " + "[" * 3000 + "]" * 3000 + "\n", r"m\.toml: line 1 \(x\): arrays or tables "
         r"nested too deeply"),
    ],
)  # fmt: skip
def test_hostile_maps_are_named(tmp_path: Path, extra: str, expected: str) -> None:
    text = DEMO_MAP.read_text().replace('vehicle_class = "car"\n', "")
    with pytest.raises(ConfigError, match=expected):
        load_signal_map(demo_map_in(tmp_path, extra + text))


def test_a_map_that_is_not_utf8_or_has_a_long_name_is_named(tmp_path: Path) -> None:
    path = demo_map_in(tmp_path, DEMO_MAP.read_bytes().replace(b"km/h", b"km/\xe9h", 1))
    with pytest.raises(ConfigError, match=r"m\.toml: line \d+ \(signals\.\"Vehicle\.Speed\"\."
                                          r"unit\): not UTF-8 text \(byte 0xe9\)"):  # fmt: skip
        load_signal_map(path)
    with pytest.raises(ConfigError, match="cannot read signal map: File name too long"):
        load_signal_map(tmp_path / ("m" * 300 + ".toml"))
    path = demo_map_in(tmp_path, DEMO_MAP.read_text().replace("msp_demo.dbc", "d" * 300 + ".dbc"))
    with pytest.raises(ConfigError, match=r"m\.toml: DBC file .*ddd.*File name too long"):
        load_signal_map(path)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=4)),
                min_size=1, max_size=6))  # fmt: skip
def test_any_mutation_of_a_map_loads_or_is_named(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(DEMO_MAP.read_bytes())
    for pos, new in edits:
        at = pos % len(data)
        data[at : at + len(new)] = new
    with tempfile.TemporaryDirectory() as tmp:
        path = demo_map_in(Path(tmp), bytes(data))
        try:
            load_signal_map(path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}: ")
