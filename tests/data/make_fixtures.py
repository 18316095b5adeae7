"""Regenerates the simulated log fixtures in this folder (run from the repository root).

The files are committed; this script documents how they were made and remakes them after a
change to the simulator or the demo DBC.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import can

from edge_agent.simulate import simulate

HERE = Path(__file__).parent


#: What the fuzzed ASC's mutations write: line separators Python's str.splitlines() knows
#: but a file's readline does not (\x0b \x0c \x1c-\x1e \x85), a lone CR, NUL and junk.
FUZZ_BYTES = b"\x0b\x0c\x1c\x1d\x1e\r\x00\xff\x85ZxX;/ "


def fuzzed_asc(seed: int = 5, size: int = 6000, mutations: int = 60) -> bytes:
    """The first ``size`` bytes of drive_short.asc with ``mutations`` bytes overwritten.

    With seed 5 this is the 5.9 KB file on which the replay of the first release never
    finished (a form feed in its header desynchronised the resume-after-a-bad-line loop).
    """
    rnd = random.Random(seed)
    data = bytearray((HERE / "drive_short.asc").read_bytes()[:size])
    for _ in range(mutations):
        data[rnd.randrange(len(data))] = rnd.choice(FUZZ_BYTES)
    return bytes(data)


def main() -> None:
    """Write the first 3000 frames of a simulated city drive in five log formats, and the
    fuzzed ASC made from them."""
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
    (HERE / "fuzzed.asc").write_bytes(fuzzed_asc())


if __name__ == "__main__":
    main()
