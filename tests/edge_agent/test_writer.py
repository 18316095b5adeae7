"""RecordWriter: what the stages produce becomes outbox records; a refused one costs only itself."""

from __future__ import annotations

from pathlib import Path

from edge_agent.outbox import Outbox
from edge_agent.scoring.model import Event
from edge_agent.writer import RecordWriter
from msp_protocol.bodies import Dtc, Health, TroubleCode
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


def test_bodies_other_stages_make_are_checked_before_the_outbox_signs_them(
    tmp_path: Path, ed_signer: Signer
) -> None:
    # The outbox signs bodies as they are; trouble codes and health come from other stages.
    outbox = Outbox.open(tmp_path / "outbox.db", ed_signer, VIN)
    try:
        writer = RecordWriter(outbox)
        writer.dtc(Dtc((TroubleCode("P0301\n", "stored"),), True, None))
        writer.health(Health(10.0, 0, 0, 1.0, {"Not A Name": 1}, 0, 0))
        assert writer.counts == {"records.invalid": 2}
        assert outbox.pending(10) == []
        writer.dtc(Dtc((TroubleCode("P0301", "stored"),), True, None))
        writer.health(outbox.health_body(10.0, 1.0, {"uplink.errors": 1}))
        assert writer.counts == {"records.invalid": 2, "records.dtc": 1, "records.health": 1}
        assert [r.kind for r in outbox.pending(10)] == ["dtc", "health"]
    finally:
        outbox.close()
