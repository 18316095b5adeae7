"""RecordWriter: what the stages produce becomes outbox records; a refused one costs only itself."""

from __future__ import annotations

from pathlib import Path

from edge_agent.outbox import Outbox
from edge_agent.scoring.model import Event
from edge_agent.writer import RecordWriter
from msp_protocol.jws import Signer
from tests.protocol_data import VIN

T_2026 = 1795654800.0


def _event(start: float) -> Event:
    return Event("harsh_braking", start, 1.5, 4.2, 50.0, "major")


def test_a_record_its_schema_refuses_costs_only_itself(tmp_path: Path, ed_signer: Signer) -> None:
    outbox = Outbox.open(tmp_path / "outbox.db", ed_signer, VIN)
    try:
        writer = RecordWriter(outbox)
        # 1970: before the protocol's 1990 floor (a log replayed with relative timestamps)
        writer.events([_event(T_2026), _event(100_000.0), _event(T_2026 + 60)])
        assert writer.counts == {"records.event": 2, "records.invalid": 1}
        assert [r.seq for r in outbox.pending(10)] == [1, 2]
    finally:
        outbox.close()
