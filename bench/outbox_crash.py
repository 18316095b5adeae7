"""Longer kill -9 run of the outbox: many SIGKILLs of a full-speed writer, then a full audit.

Usage: .venv/bin/python bench/outbox_crash.py [--kills N] [--dir DIR]

Same writer and checks as tests/edge_agent/test_outbox_crash.py, for as many kills as you
like: every record whose append returned is present with the same hash, seqs are contiguous
from 1, no seq was reported twice with different content, and the whole chain verifies.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_agent.keys import init_device_key
from edge_agent.outbox import connect, iter_records
from msp_protocol.chain import verify_chain
from msp_protocol.jws import load_public_key
from tests.edge_agent.test_outbox_crash import DEVICE, run_and_kill


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-crash-", dir=args.dir or Path.cwd()))
    try:
        key = init_device_key(work / "device.key", DEVICE)
        db = work / "ob.db"
        rng = random.Random(args.seed)
        reported: dict[int, str] = {}
        reused = 0
        start = time.monotonic()
        for run in range(args.kills):
            for seq, digest in run_and_kill(db, key.key_path, run, rng):
                reused += reported.setdefault(seq, digest) != digest
        stored = list(iter_records(connect(db, readonly=True)))
        on_disk = {r.seq: r.hash for r in stored}
        lost = [s for s in reported if s not in on_disk]
        changed = [s for s, h in reported.items() if s in on_disk and on_disk[s] != h]
        contiguous = [r.seq for r in stored] == list(range(1, len(stored) + 1))
        public = load_public_key(key.public_pem.encode())
        report = verify_chain([r.jws for r in stored], lambda kid: public)
        print(
            f"{args.kills} SIGKILLs in {time.monotonic() - start:.0f} s: {len(reported)} records "
            f"reported returned, {len(stored)} stored; lost {len(lost)}, changed {len(changed)}, "
            f"seq reused {reused}, contiguous {contiguous}, chain verified to seq "
            f"{report.last_seq}"
        )
        return 0 if not (lost or changed or reused) and contiguous else 1
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
