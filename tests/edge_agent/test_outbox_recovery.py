"""A lost, damaged or rolled-back outbox file: the chain state reserves seqs apart from it, the
file is rebuilt from what is intact, and a real registry (store + ingestor) accepts the
continuation; the schema migrates and the file is created 0600."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.ingest import Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store.sqlite import SqliteStore
from edge_agent.errors import OutboxError
from edge_agent.outbox import NewRecord, Outbox, OutboxLimits, OutboxStorageError
from edge_agent.outbox.chainstate import BLOCK, ChainStateFile, chain_state_path
from edge_agent.outbox.database import SCHEMA_VERSION
from edge_agent.uplink import MemoryUplink
from msp_protocol.bodies import Gap
from msp_protocol.chain import verify_chain
from msp_protocol.jws import Signer, load_public_key, record_hash, verify_record
from msp_protocol.records import Record
from msp_protocol.topics import rec_topic
from tests.sync_kit import T0, CardIssuer, Gateway, trip

VIN = "JT1234567"


class Registry:
    """A real registry store and ingestor in this process, with one enrolled gateway."""

    def __init__(self, store: SqliteStore, ca: DeviceCa, ingestor: Ingestor) -> None:
        self.store, self.ingestor = store, ingestor
        self.gw = Gateway("gw-1", VIN)
        store.enroll(self.gw.device_row(ca))
        self.signer = Signer(self.gw.key, "gw-1")

    def deliver(self, device: str, jws: str) -> int | None:
        acks = self.ingestor.process([(rec_topic(device), jws.encode())])
        return acks[-1].seq if acks else None

    def drain(self, box: Outbox) -> None:
        MemoryUplink("gw-1", box, self.deliver).flush()

    def audit(self) -> tuple[int, int, int]:
        """What ``msp-registry audit`` checks: the stored chain verifies; returns its last
        seq, records and seqs declared evicted or lost."""
        key = load_public_key(self.store.device("gw-1").public_key_pem.encode())  # type: ignore[union-attr]
        report = verify_chain(self.store.chain_records("gw-1"), lambda _kid: key)
        return report.last_seq, report.records, report.evicted


@pytest.fixture
def registry(tmp_path: Path, device_ca: DeviceCa, card_issuer: CardIssuer) -> Iterator[Registry]:
    store = SqliteStore(tmp_path / "registry.db")
    yield Registry(store, device_ca, Ingestor(store, card_issuer.anchors(), max_waiting=256))
    store.close()


def open_box(path: Path, signer: Signer) -> Outbox:
    return Outbox.open(path, signer, VIN, OutboxLimits(resend_after_s=0.0))


def fill(box: Outbox, count: int) -> None:
    box.append_many([NewRecord(trip(10.0 + i), T0 + i) for i in range(count)])


def decoded(box: Outbox, signer: Signer) -> list[Record]:
    return [verify_record(r.jws, lambda _k: signer.public_key()) for r in box.records()]


# -- chain state ----------------------------------------------------------------------------


def test_seqs_are_reserved_in_blocks_before_they_are_signed(
    tmp_path: Path, ed_signer: Signer
) -> None:
    path = tmp_path / "ob.db"
    chain = ChainStateFile(chain_state_path(path))
    with open_box(path, ed_signer) as box:
        box.append(trip(), T0)
        first = chain.load()
        assert first is not None and first.reserved == 1 + BLOCK and first.device == "gw-0001"
        writes = chain.path.stat().st_mtime_ns, chain.path.stat().st_ino
        fill(box, 50)
        assert (chain.path.stat().st_mtime_ns, chain.path.stat().st_ino) == writes  # no fsync
        fill(box, BLOCK - 51)  # seq BLOCK: the reservation is never used up to its last seq
        assert chain.load().reserved == 1 + BLOCK  # type: ignore[union-attr]
        box.append(trip(), T0)  # seq BLOCK + 1 reserves the next block first
        assert chain.load().reserved == BLOCK + 1 + BLOCK  # type: ignore[union-attr]
    closed = chain.load()
    assert closed is not None and (closed.seq, closed.reserved) == (BLOCK + 1, 2 * BLOCK + 1)
    assert closed.hash == record_hash(list(open_box(path, ed_signer).records())[-1].jws)
    assert stat.S_IMODE(chain.path.stat().st_mode) == 0o600


def test_an_unreadable_chain_state_is_rewritten_from_an_intact_outbox(
    tmp_path: Path, ed_signer: Signer
) -> None:
    path = tmp_path / "ob.db"
    with open_box(path, ed_signer) as box:
        fill(box, 3)
    chain_state_path(path).write_bytes(b"\x00" * 40)
    with open_box(path, ed_signer) as box:
        assert box.append(trip(), T0).seq == 4
    assert ChainStateFile(chain_state_path(path)).load().seq == 4  # type: ignore[union-attr]


def test_both_damaged_is_a_clear_refusal(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    with open_box(path, ed_signer) as box:
        fill(box, 3)
    chain_state_path(path).write_text("{")
    path.write_bytes(b"\x00" * 8192)
    with pytest.raises(OutboxError, match="where the chain stands is unknown"):
        open_box(path, ed_signer)
    path.unlink()
    with pytest.raises(OutboxError, match=r"is missing or empty and .*\(not JSON\)"):
        open_box(path, ed_signer)


def test_a_chain_state_written_by_hand_continues_after_the_registry(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 4)
        registry.drain(box)
    path.unlink()
    chain = chain_state_path(path)
    chain.write_text("{")  # both lost; the operator reads N = 4 from the registry's audit
    chain.write_text('{"v": 1, "device": "gw-1", "reserved": 5, "seq": 4, "hash": null, '
                     '"acked": 0}')  # fmt: skip
    with open_box(path, registry.signer) as box:
        fill(box, 1)
        registry.drain(box)
    assert registry.audit()[:2] == (7, 6)  # 1..4, the gap at 6 declaring 5, one new
    assert registry.store.rejections() == {}


# -- a lost outbox --------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["deleted", "emptied", "zeroed"])
def test_a_lost_outbox_never_reuses_a_seq_and_the_registry_accepts_the_rest(
    tmp_path: Path, registry: Registry, loss: str
) -> None:
    path = tmp_path / "gw" / "outbox.db"
    path.parent.mkdir()
    with open_box(path, registry.signer) as box:
        fill(box, 5)
        registry.drain(box)  # seqs 1..5 at the registry
        fill(box, 3)  # seqs 6..8 never sent, then the file is gone
    size = path.stat().st_size
    if loss == "deleted":
        path.unlink()
    elif loss == "emptied":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"\x00" * size)
    with open_box(path, registry.signer) as box:
        (gap,) = decoded(box, registry.signer)
        assert isinstance(gap.body, Gap) and gap.seq == BLOCK + 2
        assert gap.body.reason == ("damaged" if loss == "zeroed" else "outbox_lost")
        (lost,) = gap.body.ranges
        assert (lost.first, lost.last) == (6, BLOCK + 1)  # from the last ack the chain knew
        assert lost.last_sha256 == gap.prev  # the gap chains on what it declares
        assert box.stats().lost_total == BLOCK - 4
        fill(box, 2)
        registry.drain(box)
        assert box.stats().rows == 0
    assert registry.store.chain_head("gw-1").seq == BLOCK + 4
    assert registry.audit() == (BLOCK + 4, 8, BLOCK - 4)
    assert "seq_reused" not in registry.store.rejections()


def test_lost_before_anything_was_acked(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 4)
        registry.drain(box)
    with open_box(path, registry.signer) as box:
        fill(box, 2)  # sent but the acks never came back
        for record in box.pending():
            registry.deliver("gw-1", record.jws)
    path.unlink()
    with open_box(path, registry.signer) as box:
        fill(box, 1)
        registry.drain(box)
    # 1..6 stored; the gap declares 5..BLOCK+1 (the registry already has 5, 6), then 2 more.
    assert registry.audit()[:2] == (BLOCK + 3, 8)
    assert registry.store.rejections().get("seq_reused", 0) == 0


def test_a_real_fork_still_raises_the_alarm(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 3)
        registry.drain(box)
    path.unlink()
    chain_state_path(path).unlink()  # both gone: the agent cannot know, the registry can
    with open_box(path, registry.signer) as box:
        box.append(trip(99.0), T0 + 99)  # another record under seq 1
        (record,) = box.pending()
        assert record.seq == 1
        registry.deliver("gw-1", record.jws)
    assert registry.store.rejections()["seq_reused"] == 1


def test_an_older_copy_of_the_outbox_is_not_trusted(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 3)
    shutil.copy(path, tmp_path / "backup.db")
    with open_box(path, registry.signer) as box:
        fill(box, 2)
        registry.drain(box)  # 1..5 at the registry
    shutil.copy(tmp_path / "backup.db", path)  # restored: holds 1..3, unacked
    with open_box(path, registry.signer) as box:
        kinds = [(r.seq, r.kind) for r in decoded(box, registry.signer)]
        assert kinds == [(1, "trip"), (2, "trip"), (3, "trip"), (BLOCK + 2, "gap")]
        registry.drain(box)
        assert box.stats().rows == 0
    assert registry.audit()[:2] == (BLOCK + 2, 6)
    assert registry.store.rejections() == {"duplicate": 3}
    assert (tmp_path / "outbox.db.damaged").is_file()  # the old file is kept for inspection


# -- damaged rows ---------------------------------------------------------------------------


def test_a_damaged_row_is_declared_and_everything_after_it_is_sent(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 6)
    with sqlite3.connect(path) as raw:  # one row's JWS damaged, as a flipped bit does
        raw.execute("UPDATE records SET jws = substr(jws, 1, 40) || 'x' || substr(jws, 42) "
                    "WHERE seq = 3")  # fmt: skip
    with open_box(path, registry.signer) as box:
        registry.drain(box)  # the read finds the damage, rebuilds, declares seq 3
        assert box.stats().rows == 0
        assert [(d.first, d.last) for d in box.damage[1:]] == [(3, 3)]
        fill(box, 1)
        registry.drain(box)
    last, records, lost = registry.audit()
    assert (records, last) == (5 + 1 + 1, BLOCK + 3)  # 5 intact, the gap, 1 new
    assert [s for s in range(1, 7) if registry.store.record_hash("gw-1", s)] == [1, 2, 4, 5, 6]
    assert lost == 1 + (BLOCK + 1 - 6)  # seq 3 and the reserved, unused 7..BLOCK+1


def test_a_damaged_hash_column_alone_loses_nothing(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 3)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE records SET hash = 'B' || substr(hash, 2) WHERE seq = 2")
    with open_box(path, registry.signer) as box:
        registry.drain(box)
    assert [s for s in range(1, 4) if registry.store.record_hash("gw-1", s)] == [1, 2, 3]
    assert registry.audit()[0] == BLOCK + 2


def test_an_inconsistent_state_row_is_rebuilt_not_trusted(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "outbox.db"
    with open_box(path, registry.signer) as box:
        fill(box, 3)
    with sqlite3.connect(path) as raw:  # the head moved back: seq 3 would be signed again
        raw.execute("UPDATE state SET last_seq = 2")
    with open_box(path, registry.signer) as box:
        assert [r.seq for r in box.records()] == [1, 2, 3, BLOCK + 2]
        registry.drain(box)
    assert registry.audit()[:2] == (BLOCK + 2, 4)


# -- schema and file modes ------------------------------------------------------------------


def test_a_schema_1_file_is_migrated(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    with sqlite3.connect(path) as raw:  # as the agent before versioned migrations made it
        raw.executescript(
            "CREATE TABLE records (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, jws TEXT NOT "
            "NULL, hash TEXT NOT NULL, size INTEGER NOT NULL, priority INTEGER);"
            "CREATE TABLE state (id INTEGER PRIMARY KEY, schema_version INTEGER, device TEXT,"
            " last_seq INTEGER, last_hash TEXT, acked_seq INTEGER, acked_hash TEXT, rows "
            "INTEGER, bytes INTEGER, evicted_total INTEGER, evicted_at_health INTEGER, "
            "public_key TEXT);"
        )
        raw.execute("INSERT INTO state VALUES (1, 1, ?, 0, NULL, 0, NULL, 0, 0, 0, 0, ?)",
                    (ed_signer.kid, ed_signer.public_pem()))  # fmt: skip
    with open_box(path, ed_signer) as box:
        assert box.append(trip(), T0).seq == 1
        assert box.stats().lost_total == 0
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert raw.execute("SELECT schema_version FROM state").fetchone()[0] == 2


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    open_box(path, ed_signer).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 7")
    with pytest.raises(OutboxError, match=r"schema version 7 is newer than this agent's 2"):
        open_box(path, ed_signer)


def test_the_outbox_and_its_wal_are_owner_only(tmp_path: Path, ed_signer: Signer) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "ob.db"
        box = open_box(path, ed_signer)
        box.append(trip(), T0)
        files = [path, path.with_name("ob.db-wal"), path.with_name("ob.db-shm")]
        assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
        box.close()
        legacy = tmp_path / "legacy.db"
        shutil.copy(path, legacy)
        legacy.chmod(0o644)  # an outbox an earlier version left readable by all
        open_box(legacy, ed_signer).close()
        assert stat.S_IMODE(legacy.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_chain_state_is_json_naming_the_device(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    with open_box(path, ed_signer) as box:
        fill(box, 2)
    value = json.loads(chain_state_path(path).read_text())
    assert value == {"v": 1, "device": "gw-0001", "reserved": 1 + BLOCK, "seq": 2,
                     "hash": value["hash"], "acked": 0}  # fmt: skip
    assert isinstance(value["hash"], str) and len(value["hash"]) == 43


def test_a_reservation_that_cannot_be_written_refuses_the_record(
    tmp_path: Path, ed_signer: Signer
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    box = Outbox.open(tmp_path / "ob.db", ed_signer, VIN, chain_path=blocker / "ob.chain")
    with pytest.raises(OutboxStorageError, match="cannot write chain state") as caught:
        box.append(trip(), T0)
    assert caught.value.reason == "io"
    stats = box.stats()
    assert (stats.rows, stats.last_seq, stats.refused_total) == (0, 0, 1)  # nothing signed
    box.close()


def test_a_second_process_never_lowers_the_reservation(tmp_path: Path, ed_signer: Signer) -> None:
    path = tmp_path / "ob.db"
    uplink = open_box(path, ed_signer)  # e.g. msp-agent uplink beside the running agent
    with open_box(path, ed_signer) as agent:
        fill(agent, BLOCK + 10)  # reserves twice, after the uplink read the chain state
        assert uplink.stats().last_seq == BLOCK + 10
        uplink.close()  # writes the head it sees: must keep the agent's reservation
        assert ChainStateFile(chain_state_path(path)).load().reserved == 2 * BLOCK + 1  # type: ignore[union-attr]
        agent.append(trip(), T0)
    assert ChainStateFile(chain_state_path(path)).load().reserved == 2 * BLOCK + 1  # type: ignore[union-attr]


def test_a_process_follows_a_rebuild_made_by_another(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "outbox.db"
    agent = open_box(path, registry.signer)
    fill(agent, 4)
    uplink = open_box(path, registry.signer)  # a second process on the same file
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE records SET jws = 'x' || substr(jws, 2) WHERE seq = 2")
    registry.drain(uplink)  # finds the damage, rebuilds the file, declares seq 2
    after = agent.append(trip(50.0), T0 + 50)  # must land in the new file, after the gap
    assert after.seq == BLOCK + 3
    registry.drain(uplink)
    uplink.close()
    agent.close()
    assert registry.audit()[:2] == (BLOCK + 3, 5)  # 1, 3, 4, the gap, the new one
    assert registry.store.record_hash("gw-1", BLOCK + 3) == after.hash


def test_a_damaged_priority_never_evicts_a_gap_or_session_record(
    tmp_path: Path, ed_signer: Signer
) -> None:
    path = tmp_path / "ob.db"
    box = Outbox.open(path, ed_signer, VIN, OutboxLimits(max_rows=4))
    box.append(trip(), T0)
    with sqlite3.connect(path) as raw:  # as if a flipped bit made seq 1 evictable
        raw.execute("UPDATE records SET kind = 'gap', priority = 0 WHERE seq = 1")
    for i in range(6):
        box.append(trip(float(i)), T0 + i)
    assert 1 in [r.seq for r in box.records()]
    box.close()
