"""The size bound: eviction by priority, gap markers in the chain, refusal when nothing may go."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.outbox import Outbox, OutboxFullError, OutboxLimits
from msp_protocol.bodies import Gap
from msp_protocol.chain import verify_chain
from msp_protocol.jws import Signer, verify_record
from msp_protocol.records import Record
from tests.protocol_data import VIN, body

KEEP = {"session.start", "session.end", "emergency", "dtc", "gap"}


def open_box(path: Path, signer: Signer, **limits: float) -> Outbox:
    return Outbox.open(path, signer, VIN, OutboxLimits(**limits))  # type: ignore[arg-type]


def stored(box: Outbox) -> list[Record]:
    return [verify_record(r.jws, lambda kid: box._signer.public_key()) for r in box.records()]


def evicted_by_gaps(box: Outbox) -> list[tuple[int, str]]:
    """(seq range first, kinds) declared by every gap record, in order."""
    out = []
    for record in stored(box):
        if isinstance(record.body, Gap):
            out += [(r.first, ",".join(r.kinds)) for r in record.body.ranges]
    return out


def test_eviction_goes_health_then_stats_then_oldest_event_or_trip(
    tmp_path: Path, ed_signer: Signer
) -> None:
    kinds = ["session.start", "emergency", "dtc", "health", "stats", "event", "trip", "health",
             "stats", "event"]  # fmt: skip
    with open_box(tmp_path / "ob.db", ed_signer, max_rows=10, low_water=1.0) as box:
        for i, kind in enumerate(kinds):
            box.append(body(kind), 1.79e9 + i)
        appended = [box.append(body("trip"), 1.79e9 + 100 + i) for i in range(3)]
        assert [(r.seq, r.kind) for r in appended] == [(12, "trip"), (14, "trip"), (16, "trip")]
        assert evicted_by_gaps(box) == [
            (4, "health"),
            (8, "health"),
            (5, "stats"),
            (9, "stats"),
            (6, "event,trip"),
        ]
        assert box.stats().rows <= 10
        assert box.stats().evicted_total == 6
        report = verify_chain([r.jws for r in box.records()], lambda k: ed_signer.public_key())
        assert (report.evicted, report.last_seq) == (6, 16)


def test_refuses_when_only_unevictable_records_remain_then_resumes_after_ack(
    tmp_path: Path, ed_signer: Signer
) -> None:
    with open_box(tmp_path / "ob.db", ed_signer, max_rows=4) as box:
        for i, kind in enumerate(["session.start", "emergency", "dtc", "session.end"]):
            box.append(body(kind), 1.79e9 + i)
        before = box.stats()
        with pytest.raises(OutboxFullError, match="only records that are never evicted remain"):
            box.append(body("health"), 1.79e9 + 9)
        after = box.stats()
        assert (after.rows, after.last_seq, after.bytes) == (before.rows, 4, before.bytes)
        assert {r.kind for r in stored(box)} == {"session.start", "emergency", "dtc", "session.end"}
        box.ack(2)
        assert box.append(body("health"), 1.79e9 + 10).seq == 5


def test_byte_bound_holds_and_evicts_down_to_the_low_water_mark(
    tmp_path: Path, ed_signer: Signer
) -> None:
    with open_box(tmp_path / "ob.db", ed_signer, max_bytes=20_000, low_water=0.5) as box:
        sizes = []
        for i in range(80):
            box.append(body("event"), 1.79e9 + i)
            sizes.append(box.stats().bytes)
        assert max(sizes) <= 20_000
        gaps = [r for r in stored(box) if r.kind == "gap"]
        # Evicting to half the bound each time: a handful of gap markers, not one per append.
        assert 1 <= len(gaps) <= 6
        assert min(sizes[40:]) < 12_000
        verify_chain([r.jws for r in box.records()], lambda k: ed_signer.public_key())


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(
        st.sampled_from(["health", "stats", "event", "trip", "session.start", "dtc", "emergency"]),
        min_size=1,
        max_size=60,
    ),
    max_rows=st.integers(min_value=8, max_value=30),
    ack_every=st.integers(min_value=5, max_value=100),
)
def test_any_stream_keeps_the_bound_the_chain_and_every_protected_record(
    tmp_path_factory: pytest.TempPathFactory,
    ed_signer: Signer,
    kinds: list[str],
    max_rows: int,
    ack_every: int,
) -> None:
    path = tmp_path_factory.mktemp("ob") / "ob.db"
    written: dict[int, str] = {}
    with open_box(path, ed_signer, max_rows=max_rows) as box:
        for i, kind in enumerate(kinds):
            try:
                record = box.append(body(kind), 1.79e9 + i)
                assert record.kind == kind
                written[record.seq] = kind
            except OutboxFullError:
                # Refused only when evicting every evictable record could not make room for
                # the record and the gap marker naming what was evicted.
                assert sum(r.kind not in KEEP for r in box.records()) <= 1
            if i % ack_every == ack_every - 1:
                box.ack(box.stats().last_seq)
            assert box.stats().rows <= max_rows
        acked = box.stats().acked_seq
        present = {r.seq: r.kind for r in stored(box)}
        protected = {s for s, k in written.items() if k in KEEP and s > acked}
        assert protected <= set(present)
        if present:
            report = verify_chain(
                [r.jws for r in box.records()], lambda k: ed_signer.public_key(),
                anchor=box.anchor(),
            )  # fmt: skip
            assert report.records == len(present)
