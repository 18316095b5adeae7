"""``msp-agent simulate``: what it says it wrote is what the ground truth says, and where
the demo DBC is not beside the package (installed from a wheel)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.simulate import DEFAULT_DBC


def test_the_summary_gives_the_length_written_and_the_length_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, truth = tmp_path / "drive.log", tmp_path / "truth.json"
    assert main(["simulate", str(out), "--scenario", "city", "--seed", "3", "--duration", "30",
                 "--no-background", "--truth", str(truth)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    facts = json.loads(truth.read_text())
    match = re.fullmatch(r"wrote ([\d,]+) frames? to (\S+): a (\d+) s drive \(asked: about 30 s; "
                         r"drives end with a whole leg\), ([\d.]+) km, (\d+) injected "
                         r"(event|events)\n", err)  # fmt: skip
    assert match is not None, err
    assert int(match[1].replace(",", "")) == facts["frames"] and match[2] == str(out)
    assert int(match[3]) == round(facts["duration_s"])
    assert float(match[4]) == pytest.approx(facts["distance_km"], abs=0.005)
    assert int(match[5]) == len(facts["events"])
    assert match[6] == ("event" if len(facts["events"]) == 1 else "events")


def test_the_help_explains_why_the_length_differs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "whole city and highway legs" in " ".join(capsys.readouterr().out.split())



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
