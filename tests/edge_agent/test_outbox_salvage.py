"""Reading a damaged outbox row by row: a damaged JWS is never taken as intact, the seqs that
are gone are found in the rebuilt file, a truncated file is read through a mended copy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.outbox import NewRecord, Outbox, connect
from edge_agent.outbox.salvage import check_row, lost_ranges, repaired_copy, scan
from msp_protocol.bodies import EvictedRange, Gap
from msp_protocol.jws import Signer, record_hash
from tests.protocol_data import VIN, body, make_chain


@settings(max_examples=150, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_a_damaged_jws_is_never_taken_as_intact(
    ed_signer: Signer, position: int, value: int
) -> None:
    token = make_chain(ed_signer, ["trip"])[0]
    digest = record_hash(token)
    raw = bytearray(token.encode("ascii"))
    at = position % len(raw)
    if raw[at] == value:
        return
    raw[at] = value
    damaged = raw.decode("utf-8", "surrogateescape")
    for key in (None, ed_signer.public_key()):
        verdict = check_row(1, "trip", damaged, digest, device=ed_signer.kid, key=key)
        assert isinstance(verdict, str), (at, value)


def test_a_damaged_hash_is_repaired_only_with_a_valid_signature(ed_signer: Signer) -> None:
    token = make_chain(ed_signer, ["trip"])[0]
    without = check_row(1, "trip", token, "B" * 43, device=ed_signer.kid, key=None)
    assert without == "JWS does not match its stored chain hash"
    repaired = check_row(1, "trip", token, "B" * 43, device=ed_signer.kid,
                         key=ed_signer.public_key())  # fmt: skip
    assert not isinstance(repaired, str) and repaired.record.hash == record_hash(token)


def _rebuilt(path: Path, signer: Signer, seqs: list[int],
             gap: Gap | None = None) -> sqlite3.Connection:  # fmt: skip
    tokens = make_chain(signer, ["trip"] * max(seqs))
    conn = connect(path)
    conn.executescript("CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT, jws TEXT,"
                       " hash TEXT, size INTEGER, priority INTEGER)")  # fmt: skip
    for seq in seqs:
        conn.execute("INSERT INTO records VALUES (?, 'trip', ?, ?, 0, 2)",
                     (seq, tokens[seq - 1], record_hash(tokens[seq - 1])))  # fmt: skip
    if gap is not None:
        box = Outbox.open(path.with_name("g.db"), signer, VIN)
        stored = box.append_many([NewRecord(body("trip"), 1.79e9) for _ in range(max(seqs))])
        token = box.append(gap, 1.79e9).jws
        box.close()
        conn.execute("INSERT INTO records VALUES (?, 'gap', ?, ?, 0, NULL)",
                     (len(stored) + 1, token, record_hash(token)))  # fmt: skip
    return conn


def test_lost_ranges_end_before_intact_records_and_at_the_unused_seq(
    tmp_path: Path, ed_signer: Signer
) -> None:
    tokens = make_chain(ed_signer, ["trip"] * 9)
    conn = _rebuilt(tmp_path / "r.db", ed_signer, [1, 2, 5, 6, 9])
    ranges = lost_ranges(conn, 1, 12, "P" * 43)
    assert ranges == [
        EvictedRange(3, 4, record_hash(tokens[3]), {}),  # the prev signed into seq 5
        EvictedRange(7, 8, record_hash(tokens[7]), {}),
        EvictedRange(10, 12, "P" * 43, {}),  # up to the reserved seq: the gap's own prev
    ]


def test_lost_ranges_leave_out_what_a_kept_gap_declares(tmp_path: Path, ed_signer: Signer) -> None:
    gap = Gap("size_bound", (EvictedRange(3, 4, "E" * 43, {"trip": 2}),))
    conn = _rebuilt(tmp_path / "r.db", ed_signer, [1, 2, 6], gap)  # the gap is seq 7
    ranges = lost_ranges(conn, 1, 9, "P" * 43)
    assert [(r.first, r.last) for r in ranges] == [(5, 5), (8, 9)]


def test_a_truncated_file_is_read_through_a_mended_copy(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    with Outbox.open(path, ed_signer, VIN) as box:
        box.append_many([NewRecord(body("trip"), 1.79e9 + i) for i in range(80)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    refused = scan(connect(path, readonly=True), None, None)
    assert not refused.records and "not readable as SQLite" in str(refused.damage[0])
    copy = tmp_path / "copy.db"
    repaired_copy(path, copy)
    mended = scan(sqlite3.connect(copy), None, None)
    seqs = [item.record.seq for item in mended.records]
    assert seqs[:10] == list(range(1, 11)) and len(seqs) < 80  # the pages that remain
