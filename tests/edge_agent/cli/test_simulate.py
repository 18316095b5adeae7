"""``msp-agent simulate``: what it says it wrote is what the ground truth says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge_agent.cli import main


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
