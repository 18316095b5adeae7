"""Signal maps: ``values = { ... }`` turns a DBC's enumerations and switches into canonical
values (gear positions, a brake switch as 0/100), checked at load; and ``opendbc:NAME`` DBC
references fail with the map named when opendbc's files are not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent import signals as sig
from edge_agent.decode import DbcDecoder
from edge_agent.errors import ConfigError
from edge_agent.frames import Frame
from edge_agent.signalmap import load_signal_map
from edge_agent.vehicles import opendbc

DBC = '''VERSION ""
BS_:
BU_: XXX
BO_ 956 GEAR_PACKET: 8 XXX
 SG_ GEAR : 13|6@0+ (1,0) [0|63] "" XXX
 SG_ BRAKE : 16|1@0+ (1,0) [0|1] "" XXX
 SG_ SHIFTER : 31|4@0+ (1,0) [0|15] "" XXX
VAL_ 956 GEAR 0 "D" 1 "S" 8 "N" 16 "R" 32 "P" ;
VAL_ 956 SHIFTER 1 "D" 2 "D" 13 "P" ;
'''


def _map(tmp_path: Path, gear: str, extra: str = "") -> Path:
    (tmp_path / "car.dbc").write_text(DBC)
    path = tmp_path / "car.toml"
    path.write_text(
        'dbc = "car.dbc"\n[signals."Vehicle.Powertrain.Transmission.CurrentGear"]\n'
        f'message = "GEAR_PACKET"\nsignal = "GEAR"\nunit = "1"\n{gear}\n'
        '[signals."Vehicle.Chassis.Brake.PedalPosition"]\nmessage = "GEAR_PACKET"\n'
        f'signal = "BRAKE"\nunit = "%"\nvalues = {{ "0" = 0, "1" = 100 }}\n{extra}'
    )
    return path


def _decode(path: Path, data: bytes) -> tuple[dict[str, object], DbcDecoder]:
    decoder = DbcDecoder(load_signal_map(path))
    return {s.name: s.value for s in decoder.decode(Frame(1.0, 956, data))}, decoder


def test_value_names_and_numbers_map_to_canonical_values(tmp_path: Path) -> None:
    path = _map(tmp_path, 'values = { P = 0, R = -1, N = 0, D = 1, "1" = 2 }')
    # GEAR = 16 ("R") in bits 13..8 of byte 1; BRAKE (bit 16) set
    got, decoder = _decode(path, bytes([0, 16, 1, 0, 0, 0, 0, 0]))
    assert got == {sig.GEAR: -1, sig.BRAKE_PEDAL: 100.0}
    got, _ = _decode(path, bytes([0, 1, 0, 0, 0, 0, 0, 0]))  # raw 1 is "S": listed as "1" = 2
    assert got == {sig.GEAR: 2, sig.BRAKE_PEDAL: 0.0}
    got, decoder = _decode(path, bytes([0, 5, 0, 0, 0, 0, 0, 0]))  # 5: no name, not listed
    assert got == {sig.BRAKE_PEDAL: 0.0}
    assert decoder.rejected == {"unlisted_value": 1}


@pytest.mark.parametrize(
    ("gear", "message"),
    [
        ('values = { Q = 1 }', r"values\.Q: not a value name of GEAR \(known: D, N, P, R, S\)"),
        ('values = { P = "park" }', r"values\.P: expected a number"),
        ('values = { P = true }', r"values\.P: expected a number"),
        ('values = { R = -5 }', r"values\.R = -5 is not plausible \(-2\.\.12\)"),
        ("values = 3", r"'values' must be a table"),
        ("values = {}", r"'values' must be a table"),
        ('invert = true\nvalues = { P = 0 }', r"'values' and 'invert' do not go together"),
    ],
)
def test_bad_values_are_refused_naming_the_entry(tmp_path: Path, gear: str, message: str) -> None:
    where = r"car\.toml: \[signals\.'Vehicle\.Powertrain.*"
    with pytest.raises(ConfigError, match=where + message):
        load_signal_map(_map(tmp_path, gear))


def test_a_name_given_to_several_values_must_be_written_as_numbers(tmp_path: Path) -> None:
    path = _map(tmp_path, 'values = { P = 0 }').read_text().replace('signal = "GEAR"',
                                                                      'signal = "SHIFTER"', 1)
    (tmp_path / "car.toml").write_text(path.replace("{ P = 0 }", "{ D = 1 }"))
    with pytest.raises(ConfigError, match=r"values\.D: SHIFTER gives that name to several"):
        load_signal_map(tmp_path / "car.toml")
    (tmp_path / "car.toml").write_text(path.replace("{ P = 0 }", '{ "1" = 1, "2" = 2, P = 0 }'))
    assert load_signal_map(tmp_path / "car.toml").canonical_names == {sig.GEAR, sig.BRAKE_PEDAL}


def test_an_opendbc_dbc_without_opendbc_names_the_map_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opendbc, "_installed", lambda: None)
    monkeypatch.setenv("MSP_VEHICLES_CACHE", str(tmp_path / "empty"))
    path = tmp_path / "toyota.toml"
    path.write_text('dbc = "opendbc:toyota_nodsu_pt"\n[signals."Vehicle.Speed"]\n'
                    'message = "SPEED"\nsignal = "SPEED"\nunit = "km/h"\n')  # fmt: skip
    with pytest.raises(ConfigError, match=r"toyota\.toml: .*msp-agent vehicles fetch"):
        load_signal_map(path)
