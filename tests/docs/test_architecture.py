"""docs/architecture.md, "Signal names and COVESA VSS": every canonical signal is listed once,
and the ones marked ours are exactly the names VSS does not define."""

from __future__ import annotations

import re
from pathlib import Path

from edge_agent.signals import CANONICAL

DOC = (Path(__file__).parent.parent.parent / "docs" / "architecture.md").read_text()


def vss_table() -> dict[str, str]:
    """canonical name → the table's "in VSS" cell."""
    section = DOC.split("### Signal names and COVESA VSS")[1].split("\n### ")[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`Vehicle."):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        base = names[0].rsplit(".", 1)[0]
        for name in names:  # `Vehicle.X.Lateral`, `.Longitudinal`: the same branch
            full = base + name if name.startswith(".") else name
            assert full not in rows, f"{full} listed twice"
            rows[full] = cells[1]
    return rows


def test_every_canonical_signal_is_listed() -> None:
    assert set(vss_table()) == set(CANONICAL)


def test_the_names_of_ours_are_the_three_vss_does_not_define() -> None:
    ours = {name for name, cell in vss_table().items() if "ours" in cell}
    assert ours == {"Vehicle.SpeedLimit", "Vehicle.IsIgnitionOn", "Vehicle.Safety.CrashDetected"}
    obd = {name for name, cell in vss_table().items() if cell == "up to 5.x"}
    assert obd == {n for n in CANONICAL if n.startswith("Vehicle.OBD.")}
