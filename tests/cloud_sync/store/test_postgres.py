"""What only the PostgreSQL store does: it outlives a server restart (the call that saw the
connection drop fails, the next one connects again), and the SQLite path never imports
psycopg."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud_sync.errors import StoreError
from cloud_sync.ingest import Ack, Ingestor
from cloud_sync.pki import DeviceCa
from cloud_sync.store import ChainHead
from cloud_sync.store.open import open_store
from msp_protocol.topics import rec_topic
from tests.pg_server import PgServer
from tests.sync_kit import CardIssuer, Gateway, trip


def test_the_store_connects_again_after_the_server_restarts(
    pg_server: PgServer, tmp_path: Path, device_ca: DeviceCa, card_issuer: CardIssuer
) -> None:
    store = open_store(pg_server.create_database(), secrets_dir=tmp_path / "secrets")
    try:
        gw = Gateway("gw-1", "JT1234567")
        store.enroll(gw.device_row(device_ca))
        ingestor = Ingestor(store, card_issuer.anchors())
        first, second = gw.sign(trip(), "trip"), gw.sign(trip(), "trip")
        assert ingestor.process([(rec_topic("gw-1"), first.encode())]) == [Ack("gw-1", 1)]
        pg_server.stop()
        try:
            with pytest.raises(StoreError):  # nothing is acked: the broker redelivers
                ingestor.process([(rec_topic("gw-1"), second.encode())])
            with pytest.raises(StoreError, match="cannot connect"):
                store.chain_head("gw-1")
        finally:
            pg_server.start()
        assert ingestor.process([(rec_topic("gw-1"), second.encode())]) == [Ack("gw-1", 2)]
        assert store.chain_head("gw-1").seq == 2 and store.counts()["records"] == 2
        assert store.chain_head("gw-2") == ChainHead(0, None)
    finally:
        store.close()


def test_the_sqlite_path_never_imports_psycopg(tmp_path: Path) -> None:
    code = ("import sys; from cloud_sync.store.open import open_store;"
            f" open_store({str(tmp_path / 'r.db')!r}).close();"
            " from cloud_sync import cli; cli.build_parser();"
            " print('psycopg' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "False"
