"""Scoring configuration: class defaults, overrides, TOML loading with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.scoring import ScoringConfig, load_scoring_config


def test_class_defaults() -> None:
    car, light, heavy = (ScoringConfig.for_class(c) for c in ("car", "light_truck", "heavy_truck"))
    assert (car.harsh_braking_mps2, light.harsh_braking_mps2, heavy.harsh_braking_mps2) == (
        3.5,
        3.2,
        3.0,
    )
    assert (car.harsh_acceleration_mps2, light.harsh_acceleration_mps2) == (3.5, 3.0)
    assert (car.harsh_cornering_mps2, heavy.harsh_cornering_mps2) == (4.0, 3.0)
    assert (car.max_speed_kmh, heavy.max_speed_kmh) == (100.0, 80.0)
    assert (car.continuous_driving_limit_s, heavy.continuous_driving_limit_s) == (7200, 14400)
    assert ScoringConfig() == car
    assert ScoringConfig(fuel_type="diesel").co2_kg_per_l == 2.58


def test_overrides_and_their_validation() -> None:
    assert ScoringConfig.for_class("light_truck", rearm_s=5.0).rearm_s == 5.0
    with pytest.raises(ConfigError, match="unknown scoring setting"):
        ScoringConfig.for_class("car", harsh_brake=3.0)
    with pytest.raises(ConfigError, match="harsh_braking_mps2: expected a positive finite"):
        ScoringConfig.for_class("car", harsh_braking_mps2=-1.0)
    with pytest.raises(ConfigError, match="vehicle_class: 'bus'"):
        ScoringConfig.for_class("bus")
    with pytest.raises(ConfigError, match="hysteresis"):
        ScoringConfig(hysteresis=1.0)
    with pytest.raises(ConfigError, match="fuel_type"):
        ScoringConfig(fuel_type="coal")  # type: ignore[arg-type]


def test_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[scoring]\nvehicle_class = "heavy_truck"\nfuel_type = "diesel"\nharsh_braking_mps2 = 2\n'
    )
    config = load_scoring_config(path)
    assert (config.vehicle_class, config.fuel_type) == ("heavy_truck", "diesel")
    assert config.harsh_braking_mps2 == 2.0
    assert config.harsh_cornering_mps2 == 3.0  # class default kept
    (tmp_path / "empty.toml").write_text("")
    assert load_scoring_config(tmp_path / "empty.toml") == ScoringConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[scoring]\nvehicle_class = "tram"\n', "vehicle_class: expected one of"),
        ('[scoring]\nrearm_s = "long"\n', "rearm_s: expected a number"),
        ("[scoring]\nbogus = 1\n", "unknown scoring setting.*bogus"),
        ("[scoring\n", "invalid TOML.*line 1"),
        ('scoring = "x"\n', r"\[scoring\] must be a table"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_scoring_config(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read scoring config"):
        load_scoring_config(tmp_path / "nope.toml")
