"""Regenerates the simulated log fixtures in this folder (run from the repository root).

The files are committed; this script documents how they were made and remakes them after a
change to the simulator or the demo DBC.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import can

from edge_agent.simulate import simulate

HERE = Path(__file__).parent


def main() -> None:
    """Write the first 3000 frames of a simulated city drive in five log formats."""
    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp) / "drive.log", scenario="city", seed=5, duration=12)
        messages = list(can.LogReader(Path(tmp) / "drive.log"))[:3000]
    for suffix in (".asc", ".blf", ".trc", ".csv"):
        with can.Logger(HERE / f"drive_short{suffix}") as writer:
            for msg in messages:
                writer.on_message_received(msg)
    with can.Logger(HERE / "drive_short.log") as writer:
        for msg in messages:
            writer.on_message_received(msg)


if __name__ == "__main__":
    main()
