"""The registry's own signing key: made once, 0600 in the secret files (never the database),
exported by ``msp-registry key``, retained for everyone on ``msp/v1/registry/key``; what it
signs verifies with it, and nothing else does."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud_sync import cli as registry_cli
from cloud_sync.recipients.signing import NotFromRegistry, RegistrySigner, open_signed, registry_key
from cloud_sync.store.sqlite import SqliteStore
from msp_protocol.jws import Signer
from msp_protocol.roles import REGISTRY_KEY_TOPIC, REGISTRY_KID


def test_the_key_is_made_once_private_and_outside_the_database(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "registry.db")
    first = RegistrySigner(store).public_pem()
    assert RegistrySigner(store).public_pem() == first  # kept, not made again
    path = tmp_path / "registry.secrets" / "registry.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.close()
    assert b"PRIVATE KEY" not in (tmp_path / "registry.db").read_bytes()
    assert SqliteStore(tmp_path / "registry.db").registry_key_pem() == path.read_bytes()


def test_what_the_registry_signs_verifies_and_nothing_else(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "registry.db")
    signer = RegistrySigner(store)
    key = registry_key(signer.public_pem().encode())
    payload = signer.sign({"kind": "alert", "type": "crash"})
    assert open_signed(payload, key) == {"kind": "alert", "type": "crash"}
    header, body, sig = payload.decode().split(".")
    forged = f"{header}.{body[:-2]}AA.{sig}".encode()
    with pytest.raises(NotFromRegistry, match="does not verify"):
        open_signed(forged, key)
    other = Signer(ed25519.Ed25519PrivateKey.generate(), REGISTRY_KID)
    with pytest.raises(NotFromRegistry):
        open_signed(other.sign(b'{"kind": "alert"}').encode(), key)
    gateway = Signer(ed25519.Ed25519PrivateKey.generate(), "gw-0001")
    with pytest.raises(NotFromRegistry):
        open_signed(gateway.sign(b"{}").encode(), registry_key(gateway.public_pem().encode()))
    retained = signer.key_publication()
    assert retained.topic == REGISTRY_KEY_TOPIC and retained.retain
    assert registry_key(retained.payload).public_bytes_raw() == key.public_bytes_raw()  # type: ignore[union-attr]
    assert json.loads(retained.payload)["kid"] == REGISTRY_KID


def test_msp_registry_key_exports_the_public_half(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "registry.db"
    SqliteStore(db).close()
    out = tmp_path / "registry-key.pem"
    assert registry_cli.main(["key", "--out", str(out), "--db", str(db)]) == 0
    assert out.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    store = SqliteStore(db)
    assert out.read_text() == RegistrySigner(store).public_pem()
    assert registry_cli.main(["key", "--db", str(db)]) == 0
    assert capsys.readouterr().out.endswith(out.read_text())


def test_fleet_scores_carry_the_registry_s_signature_and_the_fleet_watcher_checks_it(
        tmp_path: Path) -> None:
    import json as _json  # noqa: PLC0415

    from cloud_sync.fleet_watch import FleetChecker  # noqa: PLC0415
    from cloud_sync.republish import score_payload  # noqa: PLC0415
    from msp_protocol.records import parse_ts  # noqa: PLC0415

    store = SqliteStore(tmp_path / "registry.db")
    signer = RegistrySigner(store)
    payload = score_payload("acme", "fp-abc", 81.24, parse_ts("2026-11-18T11:00:00Z"),
                            "2027-01-01T00:00:00Z", signer=signer)  # fmt: skip
    topic = "msp/v1/fleet/acme/score/fp-abc"
    checker = FleetChecker("acme")
    assert checker.feed(topic, payload)[0].check.startswith("REJECTED: no registry key")
    assert checker.feed(REGISTRY_KEY_TOPIC, signer.key_publication().payload) == []
    assert checker.feed(topic, payload)[0].check == "registry"
    value = _json.loads(payload)
    value["score"] = 99.0  # a score the registry did not sign
    forged = checker.feed(topic, _json.dumps(value).encode())[0]
    assert forged.check == "REJECTED: the score is not what the registry signed"


def test_the_receivers_never_raise_on_what_the_registry_signs(tmp_path: Path) -> None:
    """Whatever a signed message holds (a registry bug, a newer registry), a receiver shows a
    message, verified or rejected, and goes on."""
    from hypothesis import given, settings  # noqa: PLC0415
    from hypothesis import strategies as st  # noqa: PLC0415

    from cloud_sync.recipients.watch import Checker  # noqa: PLC0415

    store = SqliteStore(tmp_path / "registry.db")
    signer = RegistrySigner(store)
    key = registry_key(signer.public_pem().encode())
    leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
    kinds = st.sampled_from(["alert", "digest", "score", "summary", "emergency", "other"])
    keys = st.sampled_from(["location", "vehicle", "profile", "device_key", "record_jws",
                            "speed_kmh", "trips", "score", "score_before", "at", "person"])

    @settings(max_examples=150, deadline=None)
    @given(kinds, st.dictionaries(keys, value, max_size=6), st.binary(max_size=64))
    def check(kind: str, fields: dict[str, object], junk: bytes) -> None:
        checker = Checker("amb", key)
        signed = checker.feed("msp/v1/responder/amb/emergency", signer.sign({"kind": kind,
                                                                            **fields}))
        assert signed is not None and signed.lines
        unsigned = checker.feed("msp/v1/responder/amb/emergency", junk or b"x")
        assert unsigned is not None and unsigned.check.startswith("REJECTED")

    check()
