"""Append to an outbox at full speed; report every record whose append returned on stdout.

Usage: outbox_writer.py DB KEY DEVICE SEED. One line per stored record, ``SEQ HASH``, written
with a single write(2) per batch (atomic on a pipe), so a SIGKILL never leaves a record
reported that the outbox did not return. Used by the kill -9 test and bench/outbox_crash.py.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

from edge_agent.keys import load_signer
from edge_agent.outbox import NewRecord, Outbox, OutboxLimits
from msp_protocol.records import body_from_json

BODIES = Path(__file__).parent / "bodies"
KINDS = ["trip", "event", "health", "stats", "session.start", "dtc"]


def main() -> None:
    db, key, device, seed = sys.argv[1:5]
    rng = random.Random(int(seed))
    bodies = {k: body_from_json(k, json.loads((BODIES / f"{k}.json").read_text())) for k in KINDS}
    box = Outbox.open(Path(db), load_signer(Path(key), device), "JTDKB20U793123456", OutboxLimits())
    ts = 1.79e9
    while True:
        count = rng.choice((1, 1, 1, 8, 32))
        items = []
        for _ in range(count):
            ts += 0.25
            items.append(NewRecord(bodies[rng.choice(KINDS)], ts, "s-crash"))
        stored = box.append_many(items)
        os.write(1, "".join(f"{r.seq} {r.hash}\n" for r in stored).encode("ascii"))


if __name__ == "__main__":
    main()
