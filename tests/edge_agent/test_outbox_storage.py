"""Full disk and read-only storage: the outbox refuses clearly, loses nothing, and resumes.

The disk is a real tmpfs of a few hundred KiB mounted for the test (the tests run as root, as
CI does); a tmpfs cannot be remounted read-only while the outbox holds its files open for
writing, so the read-only case opens an outbox on a file system that is already read-only,
and the running-agent case uses SQLite's ``query_only`` switch, which fails writes with the
same SQLITE_READONLY a read-only file system gives.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox, OutboxLimits, OutboxStorageError
from msp_protocol.chain import verify_chain
from msp_protocol.jws import Signer
from tests.protocol_data import VIN, body


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk_refuses_then_resumes_without_loss(small_disk: Path, ed_signer: Signer) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 200_000)
    returned = []
    with Outbox.open(small_disk / "ob.db", ed_signer, VIN, OutboxLimits()) as box:
        with pytest.raises(OutboxStorageError, match="the disk is full") as info:
            for i in range(10_000):
                returned.append(box.append(body("trip"), 1.79e9 + i))
        assert info.value.reason == "disk_full"
        assert len(returned) > 5
        # Still refusing while full, and the refusals are counted for the next health record.
        with pytest.raises(OutboxStorageError):
            box.append(body("trip"), 1.79e9)
        assert box.stats().refused_total == 2
        assert box.health_body(1.0, 0.0).refused == 2
        ballast.unlink()
        resumed = box.append(body("trip"), 1.79e9 + 20_000)
        assert resumed.seq == returned[-1].seq + 1
        assert [r.hash for r in box.records()][: len(returned)] == [r.hash for r in returned]
        report = verify_chain([r.jws for r in box.records()], lambda k: ed_signer.public_key())
        assert report.records == len(returned) + 1


def test_read_only_file_system_refuses_open_and_works_when_writable(
    small_disk: Path, ed_signer: Signer
) -> None:
    path = small_disk / "ob.db"
    with Outbox.open(path, ed_signer, VIN) as box:
        box.append(body("trip"), 1.79e9)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(OutboxStorageError) as info:
        Outbox.open(path, ed_signer, VIN)
    assert info.value.reason == "read_only"
    assert str(path) in str(info.value)
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    with Outbox.open(path, ed_signer, VIN) as box:
        assert box.append(body("trip"), 1.79e9 + 1).seq == 2


def test_storage_turning_read_only_while_running(tmp_path: Path, ed_signer: Signer) -> None:
    with Outbox.open(tmp_path / "ob.db", ed_signer, VIN) as box:
        box.append(body("trip"), 1.79e9)
        box._conn.execute("PRAGMA query_only = ON")
        with pytest.raises(OutboxStorageError, match="read-only") as info:
            box.append(body("event"), 1.79e9 + 1)
        assert info.value.reason == "read_only"
        assert box.stats().last_seq == 1
        box._conn.execute("PRAGMA query_only = OFF")
        assert box.append(body("event"), 1.79e9 + 2).seq == 2


def test_missing_directory_is_named(tmp_path: Path, ed_signer: Signer) -> None:
    with pytest.raises(OutboxStorageError, match="does not exist") as info:
        Outbox.open(tmp_path / "nope" / "ob.db", ed_signer, VIN)
    assert info.value.reason == "missing"
