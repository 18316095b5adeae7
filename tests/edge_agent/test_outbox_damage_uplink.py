"""A damaged outbox file never blocks the vehicle: zeroed, truncated and bit-flipped at seeded
random points, then ``msp-agent uplink`` (the command itself) against a real mosquitto and
registry delivers every record that is still readable, the chain goes on with new records,
and the registry's audit and stored gaps explain every seq it does not have."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from cloud_sync.store.sqlite import SqliteStore
from edge_agent import cli as agent_cli
from edge_agent.keys import init_device_key, load_signer
from edge_agent.outbox import NewRecord, Outbox, connect
from edge_agent.outbox.salvage import scan_file
from msp_protocol.jws import b64url_decode
from tests.sync_deploy import Deployment, GatewaySetup
from tests.sync_kit import T0, trip

#: (damage, seed): a bounded, deterministic set; each seed picks the points in the file.
CASES = [("zero", 1), ("zero", 2), ("truncate", 3), ("truncate", 5), ("truncate", 6),
         ("flip", 5), ("flip", 6), ("flip", 7)]  # fmt: skip


def damage(path: Path, how: str, seed: int) -> str:
    """Damage the closed outbox file; returns what was done (for the failure message)."""
    rng = random.Random(seed)
    data = bytearray(path.read_bytes())
    if how == "zero":
        start, length = rng.randrange(len(data)), rng.randrange(1, 8192)
        data[start : start + length] = bytes(len(data[start : start + length]))
        done = f"zeroed {length} bytes at {start}"
    elif how == "truncate":
        cut = rng.randrange(len(data))
        del data[cut:]
        done = f"truncated to {cut} bytes"
    else:
        spots = sorted(rng.randrange(len(data) * 8) for _ in range(rng.randrange(1, 12)))
        for bit in spots:
            data[bit // 8] ^= 1 << bit % 8
        done = f"flipped bits {spots}"
    path.write_bytes(bytes(data))
    return done


def uplink(deployment: Deployment, gw: GatewaySetup) -> int:
    """``msp-agent uplink --until-empty`` for the gateway, as an operator runs it."""
    return agent_cli.main([
        "uplink", "--outbox", str(gw.outbox_path), "--key", str(gw.key), "--device", gw.device,
        "--vin", gw.vin, "--broker", f"mqtts://127.0.0.1:{deployment.device_port}",
        "--ca", str(deployment.brokerdir / "device-ca.pem"), "--cert", str(gw.cert),
        "--resend-after", "1", "--until-empty", "--timeout", "60",
    ])  # fmt: skip


def declared(tokens: list[str]) -> set[int]:
    """Seqs the stored gap records declare evicted or lost."""
    seqs: set[int] = set()
    for token in tokens:
        record = json.loads(b64url_decode(token.split(".")[1], "payload"))
        if record["kind"] == "gap":
            for item in record["body"]["ranges"]:
                seqs.update(range(item["first"], item["last"] + 1))
    return seqs


def test_damaged_outboxes_drain_and_their_chains_go_on(deployment: Deployment) -> None:
    gateways = [deployment.enroll_gateway(f"gw-{i}", f"JTCAR0000{i}") for i in range(len(CASES))]
    deployment.start_registry()
    for gw, (how, seed) in zip(gateways, CASES, strict=True):
        with gw.open_outbox() as box:
            gw.fill(box, 12)
        assert uplink(deployment, gw) == 0  # 1..12 delivered and acked
        with gw.open_outbox() as box:
            gw.fill(box, 40, start=12)  # 13..52 waiting when the file is damaged
        what = damage(gw.outbox_path, how, seed)
        copy = gw.outbox_path.with_name("inspect.db")
        shutil.copy(gw.outbox_path, copy)
        readable = {item.record.jws
                    for item in scan_file(copy, connect(copy), gw.device, None).records}
        assert uplink(deployment, gw) == 0, what
        with gw.open_outbox() as box:
            gw.fill(box, 3, start=52)  # the chain goes on after the damage
            new = {r.jws for r in box.records()}
        assert uplink(deployment, gw) == 0, what
        stored = deployment.stored(gw.device)
        tokens = [jws for _, jws in stored]
        assert readable | new <= set(tokens), what  # everything readable arrived
        last = stored[-1][0]
        explained = {seq for seq, _ in stored} | declared(tokens)
        assert set(range(1, last + 1)) <= explained, what  # every missing seq is declared
        assert deployment.registry("audit", "--device", gw.device) == 0, what
    store = SqliteStore(deployment.db)
    try:
        assert "seq_reused" not in store.rejections()
        assert store.rejections().get("bad_prev", 0) == 0
    finally:
        store.close()


@pytest.mark.parametrize(("how", "seed"), [("zero", 11), ("flip", 12), ("truncate", 5),
                                           ("truncate", 13)])  # fmt: skip
def test_export_and_verify_name_the_damage_and_carry_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str, seed: int
) -> None:
    key = init_device_key(tmp_path / "device.key", "gw-1")
    path = tmp_path / "outbox.db"
    with Outbox.open(path, load_signer(key.key_path, "gw-1"), "JTCAR00001") as box:
        box.append_many([NewRecord(trip(float(i)), T0 + i) for i in range(60)])
    capsys.readouterr()
    damage(path, how, seed)
    found = scan_file(path, connect(path, readonly=True), None, None)
    assert found.damage  # each seed damages what a reader sees
    if (how, seed) == ("truncate", 5):  # SQLite refuses it; a mended copy reads its first pages
        assert "read from a copy with its header mended" in str(found.damage[0])
        assert [item.record.seq for item in found.records] == list(range(1, 21))
    code = agent_cli.main(["outbox", "export", str(path)])
    out, err = capsys.readouterr()
    if found.identity is None and not found.records:
        assert code == 2 and "is not a readable outbox" in err  # nothing of it left
        return
    assert out.splitlines() == [item.record.jws for item in found.records]
    assert code == 1
    for item in found.damage:
        assert f"damaged: {item}" in err
    (tmp_path / "pub.pem").write_text(key.public_pem)
    code = agent_cli.main(["outbox", "verify", str(path), "--pub", str(tmp_path / "pub.pem")])
    out, err = capsys.readouterr()
    assert code == 1
    assert [line for line in err.splitlines() if "damaged:" in line] == [
        f"{path}: damaged: {item}" for item in found.damage
    ]
    assert "SQLite integrity_check:" in err  # SQLite's own account of the structure
    if found.records:
        assert f"readable {len(found.records)} records" in out or "chain broken" in err
