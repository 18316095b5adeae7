"""Benchmark the outbox against raw SQLite and bare Ed25519 measured in the same run.

Usage: .venv/bin/python bench/outbox.py [--dir DIR] [--single N] [--batched N] [--batch B]

Prints durable appends/s of ``Outbox.append`` (one transaction each) and ``append_many``
(B per transaction) next to raw ``sqlite3`` into the same schema with the same WAL +
``synchronous=FULL`` settings (one row per commit, and ``executemany`` of B rows per commit),
and our JWS sign/verify next to bare ``cryptography`` Ed25519 on the same signing input.
The database goes in DIR (default: a temporary directory in the current one), so run it on
the storage you care about: /tmp may be a tmpfs where fsync costs nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.outbox import NewRecord, Outbox, OutboxLimits
from msp_protocol.jws import Signer, verify
from msp_protocol.records import body_from_json

BODY = Path(__file__).parent.parent / "tests" / "data" / "bodies" / "trip.json"
VIN = "JTDKB20U793123456"


def rate(count: int, action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return count / (time.perf_counter() - start)


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, jws TEXT NOT NULL, "
        "hash TEXT NOT NULL, size INTEGER NOT NULL, priority INTEGER)"
    )
    conn.execute("CREATE INDEX idx_records_priority_seq ON records (priority, seq)")
    return conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--single", type=int, default=400)
    parser.add_argument("--batched", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=args.dir or Path.cwd()))
    fs = subprocess.run(["df", "-T", str(work)], check=True, capture_output=True, text=True).stdout
    print(f"storage: {fs.splitlines()[-1].split()[1]} at {work}")
    try:
        run(work, args.single, args.batched, args.batch)
    finally:
        shutil.rmtree(work)


def run(work: Path, single: int, batched: int, batch: int) -> None:
    key = Ed25519PrivateKey.generate()
    signer = Signer(key, "gw-bench")
    body = body_from_json("trip", json.loads(BODY.read_text()))
    items = [NewRecord(body, 1.79e9 + i, "s-1") for i in range(batch)]

    box = Outbox.open(work / "outbox.db", signer, VIN, OutboxLimits())
    sample = box.append(body, 1.79e9)

    def outbox_single() -> None:
        for i in range(single):
            box.append(body, 1.79e9 + i)

    def outbox_batched() -> None:
        for _ in range(batched // batch):
            box.append_many(items)

    ob_single = rate(single, outbox_single)
    ob_batched = rate(batched // batch * batch, outbox_batched)
    box.close()

    conn = raw_connection(work / "raw.db")
    row = (sample.kind, sample.jws, sample.hash, len(sample.jws), 2)
    insert = "INSERT INTO records (kind, jws, hash, size, priority) VALUES (?, ?, ?, ?, ?)"

    def raw_single() -> None:
        for _ in range(single):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, row)
            conn.execute("COMMIT")

    def raw_batched() -> None:
        for _ in range(batched // batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, [row] * batch)
            conn.execute("COMMIT")

    raw_s = rate(single, raw_single)
    raw_b = rate(batched // batch * batch, raw_batched)
    conn.close()

    # Bare Ed25519 signs the same bytes our JWS signs (its signing input); ours adds base64url,
    # header checks and the algorithm-for-key check.
    payload = sample.jws.rpartition(".")[0].encode()
    public = key.public_key()
    signature = key.sign(payload)
    n = 5000

    def repeat(action: Callable[[], object]) -> Callable[[], None]:
        return lambda: [action() for _ in range(n)] and None

    bare_sign = rate(n, repeat(lambda: key.sign(payload)))
    bare_verify = rate(n, repeat(lambda: public.verify(signature, payload)))
    our_sign = rate(n, repeat(lambda: signer.sign(payload)))
    token = signer.sign(payload)
    our_verify = rate(n, repeat(lambda: verify(token, public)))

    print(f"record size: {len(sample.jws)} bytes of JWS (a trip)")
    print(f"{'measure':44} {'ours/s':>10} {'baseline/s':>11} {'ratio':>7}")
    for name, ours, base in (
        ("durable append, 1 per transaction", ob_single, raw_s),
        (f"durable append_many, {batch} per transaction", ob_batched, raw_b),
        ("JWS sign vs bare Ed25519 sign", our_sign, bare_sign),
        ("JWS verify vs bare Ed25519 verify", our_verify, bare_verify),
    ):
        print(f"{name:44} {ours:10.0f} {base:11.0f} {ours / base:7.2f}")


if __name__ == "__main__":
    main()
