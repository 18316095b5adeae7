"""Benchmark the outbox against raw SQLite and bare Ed25519 measured in the same run.

Usage: .venv/bin/python bench/outbox.py [--dir DIR] [--single N] [--rounds R] [--batches K]
                                        [--batch B]

The figure of issue 18: durable ``append_many`` (B records per transaction) against its
baseline, bare ``cryptography`` Ed25519 signing of the same signing inputs plus raw
``sqlite3`` ``executemany`` of the same rows (seq, kind, JWS, hash, size, priority), B per
transaction. The baseline's database is made by the outbox's own ``connect`` and
``create_schema``, so it has the same table, index and PRAGMAs (WAL, ``synchronous=FULL``,
``journal_size_limit``, ``busy_timeout``; printed, read back from both connections). Ours and
the baseline alternate in R rounds of K transactions each, so load from other processes
falls on both alike; the ratio is of the totals, with the spread of the per-round ratios, and
the same ratio of this process's CPU time (which the load of other processes inflates less).

Also printed: ``Outbox.append`` (one transaction each) against raw one-row commits, and JWS
sign/verify against bare Ed25519 of the same bytes. The database goes in DIR (default: a
temporary directory in the current one), so run it on the storage you care about: /tmp may
be a tmpfs where fsync costs nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.outbox import PRIORITY, NewRecord, Outbox, OutboxLimits, StoredRecord, connect
from edge_agent.outbox.database import create_schema
from msp_protocol.jws import Signer, verify
from msp_protocol.records import body_from_json

BODY = Path(__file__).parent.parent / "tests" / "data" / "bodies" / "trip.json"
VIN = "JTDKB20U793123456"
INSERT = "INSERT INTO records (seq, kind, jws, hash, size, priority) VALUES (?, ?, ?, ?, ?, ?)"
PRAGMAS = ("journal_mode", "synchronous", "journal_size_limit", "busy_timeout")


def rate(count: int, action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return count / (time.perf_counter() - start)


def pragmas(conn: sqlite3.Connection) -> str:
    return ", ".join(f"{p}={conn.execute(f'PRAGMA {p}').fetchone()[0]}" for p in PRAGMAS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=args.dir or Path.cwd()))
    fs = subprocess.run(["df", "-T", str(work)], check=True, capture_output=True, text=True).stdout
    print(f"storage: {fs.splitlines()[-1].split()[1]} at {work}")
    try:
        run(work, args.single, args.rounds, args.batches, args.batch)
    finally:
        shutil.rmtree(work)


def run(work: Path, single: int, rounds: int, batches: int, batch: int) -> None:
    key = Ed25519PrivateKey.generate()
    signer = Signer(key, "gw-bench")
    body = body_from_json("trip", json.loads(BODY.read_text()))
    items = [NewRecord(body, 1.79e9 + i, "s-1") for i in range(batch)]

    box = Outbox.open(work / "outbox.db", signer, VIN, OutboxLimits())
    raw = connect(work / "raw.db")
    create_schema(raw, signer.kid, signer.public_pem())
    print(f"outbox:   {pragmas(box._conn)}")  # the bench reads the outbox's own settings
    print(f"baseline: {pragmas(raw)}")
    sample = box.append(body, 1.79e9)

    # -- append_many against bare sign + executemany of the same rows, alternating ---------
    ours_s = base_s = ours_cpu = base_cpu = 0.0
    ratios: list[float] = []
    for _ in range(rounds):
        stored: list[list[StoredRecord]] = []
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            stored.append(box.append_many(items))
        ours = time.perf_counter() - began
        ours_cpu += time.process_time() - cpu
        inputs = [[r.jws.rpartition(".")[0].encode("ascii") for r in recs] for recs in stored]
        rows = [[(r.seq, r.kind, r.jws, r.hash, len(r.jws), PRIORITY.get(r.kind)) for r in recs]
                for recs in stored]  # fmt: skip
        began, cpu = time.perf_counter(), time.process_time()
        for signing_inputs, batch_rows in zip(inputs, rows, strict=True):
            for signing_input in signing_inputs:
                key.sign(signing_input)
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(INSERT, batch_rows)
            raw.execute("COMMIT")
        base = time.perf_counter() - began
        base_cpu += time.process_time() - cpu
        ours_s, base_s = ours_s + ours, base_s + base
        ratios.append(base / ours)
    count = rounds * batches * batch
    ob_batched, base_batched = count / ours_s, count / base_s

    # -- single appends against raw one-row commits ------------------------------------------
    def outbox_single() -> None:
        for i in range(single):
            box.append(body, 1.79e9 + i)

    ob_single = rate(single, outbox_single)
    box.close()
    row = (sample.kind, sample.jws, sample.hash, len(sample.jws), PRIORITY.get(sample.kind))
    insert_auto = "INSERT INTO records (kind, jws, hash, size, priority) VALUES (?, ?, ?, ?, ?)"

    def raw_single() -> None:
        for _ in range(single):
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(insert_auto, row)
            raw.execute("COMMIT")

    raw_s = rate(single, raw_single)
    raw.close()

    # Bare Ed25519 signs the same bytes our JWS signs (its signing input); ours adds base64url,
    # header checks and the algorithm-for-key check.
    payload = sample.jws.rpartition(".")[0].encode()
    public = key.public_key()
    signature = key.sign(payload)
    n = 5000

    def repeat(action: Callable[[], object]) -> Callable[[], None]:
        def run_all() -> None:
            for _ in range(n):
                action()

        return run_all

    bare_sign = rate(n, repeat(lambda: key.sign(payload)))
    bare_verify = rate(n, repeat(lambda: public.verify(signature, payload)))
    our_sign = rate(n, repeat(lambda: signer.sign(payload)))
    token = signer.sign(payload)
    our_verify = rate(n, repeat(lambda: verify(token, public)))

    print(f"record size: {len(sample.jws)} bytes of JWS (a trip)")
    print(f"{'measure':52} {'ours/s':>9} {'baseline/s':>11} {'ratio':>6}")
    for name, ours, base in (
        (f"append_many, {batch}/transaction vs sign + executemany", ob_batched, base_batched),
        ("durable append, 1 per transaction vs raw 1 row", ob_single, raw_s),
        ("JWS sign vs bare Ed25519 sign", our_sign, bare_sign),
        ("JWS verify vs bare Ed25519 verify", our_verify, bare_verify),
    ):
        print(f"{name:52} {ours:9.0f} {base:11.0f} {ours / base:6.2f}")
    low, high = min(ratios), max(ratios)
    print(f"append_many ratio per round ({rounds} rounds of {batches}x{batch}): median "
          f"{statistics.median(ratios):.2f}, range {low:.2f}..{high:.2f}")  # fmt: skip
    per_record = 1e6 / ob_batched, 1e6 / base_batched
    ours_us, base_us = ours_cpu / count * 1e6, base_cpu / count * 1e6
    print(f"append_many per record: ours {per_record[0]:.1f} us, baseline {per_record[1]:.1f} us;"
          f" CPU time (this process, not the load of others) ours {ours_us:.1f} us, baseline "
          f"{base_us:.1f} us, ratio {base_us / ours_us:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
