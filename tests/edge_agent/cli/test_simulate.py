"""``msp-agent simulate`` where the demo DBC is not beside the package (installed from a wheel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.simulate import DEFAULT_DBC


def test_missing_dbc_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "site-packages" / "dbc" / "msp_demo.dbc"
    assert main(["simulate", str(tmp_path / "drive.log"), "--dbc", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"msp-agent: error: {missing}: no such DBC" in err
    assert not (tmp_path / "drive.log").exists()


def test_dbc_given_explicitly_is_used(tmp_path: Path) -> None:
    dbc = tmp_path / "elsewhere.dbc"
    dbc.write_bytes(DEFAULT_DBC.read_bytes())
    out = tmp_path / "drive.log"
    argv = ["simulate", str(out), "--duration", "5", "--no-background", "--dbc", str(dbc)]
    assert main(argv) == 0
    assert out.stat().st_size > 0
