"""``msp-agent keys init`` and ``msp-agent outbox verify|stats|export`` through the real CLI."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from jwcrypto import jwk
from jwcrypto import jws as jose

from edge_agent.cli import main
from edge_agent.keys import load_signer
from edge_agent.outbox import Outbox, OutboxLimits
from tests.protocol_data import VIN, body


@pytest.fixture
def outbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    key = tmp_path / "device.key"
    assert main(["keys", "init", "--key", str(key), "--device", "gw-0007"]) == 0
    capsys.readouterr()
    db = tmp_path / "ob.db"
    with Outbox.open(
        db, load_signer(key, "gw-0007"), VIN, OutboxLimits(max_rows=6, low_water=1.0)
    ) as box:
        for i, kind in enumerate(["session.start", "health", "trip", "event", "health", "trip"]):
            box.append(body(kind), 1.79e9 + i)
        box.append(body("trip"), 1.79e9 + 9)  # evicts the health records: a gap marker
        box.ack(1)
    return db, key


def test_keys_init_prints_the_public_key_and_refuses_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k" / "device.key"
    assert main(["keys", "init", "--key", str(key), "--device", "gw-9", "--alg", "ES256"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("-----BEGIN PUBLIC KEY-----")
    assert "ES256 key for gw-9" in err and str(key.with_suffix(".csr")) in err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert main(["keys", "init", "--key", str(key), "--device", "gw-9"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["keys", "init", "--key", str(key), "--device", "gw-9", "--force"]) == 0


def test_keys_init_writes_the_csr_its_help_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "init", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    match = re.search(r"--key (\S+) writes (\S+)\.", text)
    assert match is not None, text
    key_name, csr_name = Path(match[1]).name, Path(match[2]).name
    assert main(["keys", "init", "--key", str(tmp_path / key_name), "--device", "gw-1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([key_name, csr_name])
    assert f"--csr {csr_name}" in capsys.readouterr().err


def test_verify_passes_with_stored_key_pub_and_private_key(
    outbox: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, key = outbox
    assert main(["outbox", "verify", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "OK: 5 records of gw-0007, seqs 3..8, 2 seqs declared evicted" in out
    assert "stored in the outbox itself" in err
    pub = tmp_path / "device.pub"
    pub.write_text(load_signer(key, "gw-0007").public_pem())
    assert main(["outbox", "verify", str(db), "--pub", str(pub)]) == 0
    assert main(["outbox", "verify", str(db), "--key", str(key)]) == 0


def test_verify_names_the_first_break(
    outbox: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, key = outbox
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM records WHERE seq = 4")
    assert main(["outbox", "verify", str(db), "--key", str(key)]) == 1
    assert "chain broken at seq 4: gap" in capsys.readouterr().err
    other = tmp_path / "other.key"
    main(["keys", "init", "--key", str(other), "--device", "gw-0007"])
    capsys.readouterr()
    assert main(["outbox", "verify", str(db), "--key", str(other)]) == 1
    assert "bad_signature" in capsys.readouterr().err


def test_stats_and_export(outbox: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db, key = outbox
    assert main(["outbox", "stats", str(db), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["device"], stats["rows"], stats["acked_seq"], stats["last_seq"]) == (
        "gw-0007", 5, 1, 8,
    )  # fmt: skip
    assert stats["evicted_total"] == 2
    assert main(["outbox", "stats", str(db)]) == 0
    assert "rows: 5" in capsys.readouterr().out.splitlines()
    assert main(["outbox", "export", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    public = jwk.JWK.from_pyca(load_signer(key, "gw-0007").public_key())
    seqs = []
    for line in lines:  # anyone holding the public key can check the export independently
        token = jose.JWS()
        token.deserialize(line)
        token.verify(public)
        seqs.append(json.loads(token.payload)["seq"])
    assert seqs == [3, 4, 6, 7, 8]


def test_missing_outbox_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "stats", str(tmp_path / "nope.db")]) == 2
    assert "no outbox at" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
def test_a_file_that_is_not_an_outbox_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    for action in ("verify", "stats", "export"):
        assert main(["outbox", action, str(path)]) == 2
        assert f"{path} is not a readable outbox" in capsys.readouterr().err
