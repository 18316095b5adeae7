"""Crash safety, proven: SIGKILL a writer appending at full speed, again and again.

Every record whose ``append`` returned (the writer reports them on a pipe) must be in the
outbox afterwards with the same content, seqs contiguous from 1, and the whole chain valid.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge_agent.keys import init_device_key
from edge_agent.outbox import connect, iter_records
from msp_protocol.chain import verify_chain
from msp_protocol.jws import load_public_key

WRITER = Path(__file__).parent.parent / "data" / "outbox_writer.py"
DEVICE = "gw-crash"


def run_and_kill(db: Path, key: Path, seed: int, rng: random.Random) -> list[tuple[int, str]]:
    """Start the writer, SIGKILL it at a random moment, return the records it reported."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(db), str(key), DEVICE, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    chunks: list[bytes] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        while data := proc.stdout.read1(65536):
            chunks.append(data)
            started.set()

    reader = threading.Thread(target=read)
    reader.start()
    if rng.random() < 0.8:  # mostly mid-append; sometimes while it is still starting up
        started.wait(timeout=30)
    time.sleep(rng.uniform(0.0, 0.1))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, stderr
    text = b"".join(chunks).decode("ascii")
    lines = text.split("\n")[:-1]  # a partly written last line was never reported
    return [(int(seq), digest) for seq, digest in (line.split() for line in lines)]


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    key = init_device_key(tmp_path / "device.key", DEVICE)
    db = tmp_path / "ob.db"
    rng = random.Random(20261126)
    reported: dict[int, str] = {}
    kills = 0
    for run in range(22):
        for seq, digest in run_and_kill(db, key.key_path, run, rng):
            assert reported.setdefault(seq, digest) == digest, f"seq {seq} reused"
        kills += 1
    assert kills >= 20
    assert len(reported) > 100

    conn = connect(db, readonly=True)
    stored = list(iter_records(conn))
    seqs = [r.seq for r in stored]
    assert seqs == list(range(1, len(seqs) + 1))
    on_disk = {r.seq: r.hash for r in stored}
    missing = {s for s in reported if s not in on_disk}
    assert not missing, f"returned but lost: {sorted(missing)[:10]}"
    assert all(on_disk[s] == h for s, h in reported.items())
    public = load_public_key(key.public_pem.encode())
    report = verify_chain([r.jws for r in stored], lambda kid: public)
    assert (report.first_seq, report.last_seq) == (1, len(stored))
