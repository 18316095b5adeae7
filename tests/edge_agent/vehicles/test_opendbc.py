"""opendbc's DBC files read as data: located without importing opendbc, generator includes
assembled exactly as opendbc's own generator.py does, repaired only where cantools refuses."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import cantools
import pytest

from edge_agent.vehicles import VEHICLES, opendbc


@pytest.fixture
def wheel_dir(tmp_path: Path, opendbc_source: opendbc.DbcSource) -> Path:
    """A cache directory holding the pinned wheel (fetched once by the conftest if needed)."""
    cached = opendbc.wheel_path()
    if not cached.is_file():
        opendbc.fetch()
    shutil.copy(cached, tmp_path / cached.name)
    return tmp_path


@pytest.fixture
def generator(wheel_dir: Path, tmp_path: Path) -> ModuleType:
    """opendbc's own generator.py (stdlib only), loaded from an unpacked copy of the wheel:
    the reference our assembly must equal. The opendbc package itself is never imported."""
    root = tmp_path / "unpacked"
    with zipfile.ZipFile(opendbc.wheel_path(wheel_dir)) as archive:
        archive.extractall(root)
    path = root / "opendbc" / "dbc" / "generator" / "generator.py"
    spec = importlib.util.spec_from_file_location("opendbc_generator_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_assembly_equals_opendbc_generator_for_every_generated_dbc(
    wheel_dir: Path, generator: ModuleType
) -> None:
    source = opendbc._wheel(opendbc.wheel_path(wheel_dir))
    assert source is not None
    generated_dir = Path(generator.generator_path)
    checked = script_made = 0
    for make in sorted(p for p in generated_dir.iterdir() if p.is_dir()):
        for dbc in sorted(make.glob("[!_]*.dbc")):
            try:
                want = generator._create_dbc_content(str(make), dbc.name)
            except FileNotFoundError:
                # imports a file opendbc's sub-generator scripts make (Chrysler RAM): refused
                with pytest.raises(opendbc.VehicleError, match="imports"):
                    opendbc.assemble(source, dbc.stem)
                script_made += 1
                continue
            assert opendbc.assemble(source, dbc.stem) == want, dbc.name
            checked += 1
    assert checked >= 25  # every make's generator sources, not a lucky few
    assert script_made <= 2


def test_catalogue_dbcs_all_parse_with_cantools_after_repair(
    opendbc_source: opendbc.DbcSource,
) -> None:
    for entry in VEHICLES:
        text, _ = opendbc.for_cantools(opendbc.assemble(opendbc_source, entry.dbc))
        db = cantools.database.load_string(text, database_format="dbc", strict=False)
        assert len(db.messages) > 10, entry.dbc


def test_repairs_touch_only_what_cantools_refuses() -> None:
    text = (
        'BO_ 304 GAS: 8 XXX\n SG_ 5_SEC : 0|8@1+ (1,0) [0|1] "" XXX\n'
        'BO_ 1275 2017_5: 8 XXX\nBO_ 13274 LKAS_HUD_A: 5 ADAS\n'
        'CM_ SG_ 304 "no signal named";\nCM_ 145 "no BO_";\nCM_ SG_ 304 5_SEC "fine";\n'
        'VAL_ 1143 LEFT 0 "none" 1 "object"\nVAL_ 13274 X 0 "a" ;\n'
    )
    fixed, count = opendbc.for_cantools(text)
    assert fixed == (
        'BO_ 304 GAS: 8 XXX\n SG_ SIG_5_SEC : 0|8@1+ (1,0) [0|1] "" XXX\n'
        'BO_ 1275 MSG_2017_5: 8 XXX\nBO_ 2147496922 LKAS_HUD_A: 5 ADAS\n'
        'CM_ BO_ 304 "no signal named";\nCM_ BO_ 145 "no BO_";\nCM_ SG_ 304 SIG_5_SEC "fine";\n'
        'VAL_ 1143 LEFT 0 "none" 1 "object" ;\nVAL_ 2147496922 X 0 "a" ;\n'
    )
    assert count == 8  # the signal renamed twice, its definition and its comment
    valid = 'BO_ 36 KINEMATICS: 8 XXX\nCM_ SG_ 36 YAW_RATE "verify";\nVAL_ 36 A 0 "x" ;\n'
    assert opendbc.for_cantools(valid) == (valid, 0)


def test_an_unknown_dbc_name_is_refused(opendbc_source: opendbc.DbcSource) -> None:
    with pytest.raises(opendbc.VehicleError, match="no such DBC"):
        opendbc.assemble(opendbc_source, "toyota_flying_car")
    with pytest.raises(opendbc.VehicleError, match="not a DBC name"):
        opendbc.assemble(opendbc_source, "../../etc/passwd")


def test_shipped_and_generated_names_are_listed(opendbc_source: opendbc.DbcSource) -> None:
    names = opendbc_source.dbc_names()
    assert {"mazda_2017", "hyundai_kia_generic", "toyota_nodsu_pt", "hyundai_canfd"} <= set(names)
    assert not any(n.startswith("_") for n in names)


def test_no_dbc_anywhere_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opendbc, "_installed", lambda: None)
    with pytest.raises(opendbc.VehicleError, match="msp-agent vehicles fetch"):
        opendbc.find_source(tmp_path)


def test_a_damaged_wheel_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opendbc, "_installed", lambda: None)
    opendbc.wheel_path(tmp_path).write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(opendbc.VehicleError, match="not a readable wheel"):
        opendbc.find_source(tmp_path)


def test_the_cache_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSP_VEHICLES_CACHE", str(tmp_path / "c"))
    assert opendbc.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MSP_VEHICLES_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert opendbc.cache_dir() == tmp_path / "xdg" / "msp-gateway" / "opendbc"


def test_fetch_does_nothing_when_the_wheel_is_there(wheel_dir: Path) -> None:
    # an interpreter that cannot run: fetch must not need it
    assert opendbc.fetch(wheel_dir, python="/nonexistent/python") == opendbc.wheel_path(wheel_dir)


def test_fetch_failure_names_pip_s_error(tmp_path: Path) -> None:
    failing = tmp_path / "python"
    failing.write_text("#!/bin/sh\necho 'ERROR: No matching distribution found' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(opendbc.VehicleError, match="No matching distribution"):
        opendbc.fetch(tmp_path / "cache", python=str(failing))
    with pytest.raises(opendbc.VehicleError, match="cannot run pip"):
        opendbc.fetch(tmp_path / "cache", python=str(tmp_path / "missing"))


def test_fetch_downloads_the_pinned_wheel(tmp_path: Path) -> None:
    """The real download (PyPI), with this interpreter's pip: what `vehicles fetch` runs."""
    wheel = opendbc.fetch(tmp_path, python=sys.executable)
    assert wheel.name == f"opendbc-{opendbc.OPENDBC_VERSION}-py3-none-any.whl"
    source = opendbc._wheel(wheel)
    assert source is not None and "toyota_nodsu_pt" in source.dbc_names()


def test_the_installed_distribution_is_read_without_importing_opendbc(
    opendbc_source: opendbc.DbcSource,
) -> None:
    source = opendbc._installed()
    if source is None:
        assert "opendbc" not in sys.modules
        return  # not installed here: the wheel path above is the one in use
    assert source.version == opendbc.OPENDBC_VERSION
    assert "opendbc" not in sys.modules
    assert os.sep not in "".join(source.names) or os.sep == "/"
