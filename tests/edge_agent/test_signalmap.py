"""Signal maps: the demo map, several DBCs, lenient loading, and every rejection at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.signalmap import load_signal_map
from edge_agent.signals import CANONICAL
from tests.conftest import DATA, DEMO_MAP

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
