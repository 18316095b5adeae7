"""One registry of recipients: ``msp-registry recipient add NAME --role ROLE`` issues
credentials (certificate, ``$7$`` password, a responder's sealing key; secrets 0600) and an ACL
limited to ``msp/v1/{role}/{NAME}/#`` from the one rule set; names are unique across roles;
pseudonyms are pairwise; the recipients list carries responders' keys for the gateways."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cloud_sync import cli as registry_cli
from cloud_sync.broker_rules import recipient_grants
from cloud_sync.mosquitto import acl_text
from cloud_sync.recipients.directory import load_sealing_key, pseudonym, roles_of
from cloud_sync.store.sqlite import SqliteStore
from msp_protocol.jws import b64url


def run(tmp_path: Path, *args: str) -> int:
    return registry_cli.main([*args, "--db", str(tmp_path / "registry.db"),
                              "--ca-dir", str(tmp_path / "ca")])  # fmt: skip


def test_recipient_add_issues_credentials_and_a_role_acl(tmp_path: Path) -> None:
    out = tmp_path / "creds"
    assert run(tmp_path, "recipient", "add", "family-sato", "--role", "guardian", "--out",
               str(out), "--password") == 0  # fmt: skip
    assert run(tmp_path, "recipient", "add", "ambulance-1", "--role", "responder", "--out",
               str(out)) == 0  # fmt: skip
    assert run(tmp_path, "recipient", "add", "acme", "--role", "fleet", "--out", str(out)) == 0
    for name in ("guardian.family-sato.key", "guardian.family-sato.secret", "ambulance-1.x25519",
                 "responder.ambulance-1.key"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    store = SqliteStore(tmp_path / "registry.db")
    assert roles_of(store) == {"acme": "fleet", "ambulance-1": "responder",
                               "family-sato": "guardian", "public": "public"}
    guardian = next(r for r in store.recipients() if r.id == "family-sato")
    assert guardian.password_hash is not None and guardian.password_hash.startswith("$7$101$")
    responder = next(r for r in store.recipients() if r.id == "ambulance-1")
    sealing = load_sealing_key(out / "ambulance-1.x25519")
    assert responder.public_key == b64url(sealing.public_key().public_bytes_raw())
    store.close()
    assert b"$7$" not in (tmp_path / "registry.db").read_bytes()  # hashes are secret files
    broker = tmp_path / "broker"
    assert run(tmp_path, "mosquitto-config", str(broker), "--port", "18883", "--registry-port",
               "11883", "--fleet-port", "18884") == 0  # fmt: skip
    acl = (broker / "acl").read_text()
    assert "user guardian.family-sato\ntopic read msp/v1/guardian/family-sato/#\n" in acl
    assert "user responder.ambulance-1\ntopic read msp/v1/responder/ambulance-1/#\n" in acl
    assert "user fleet.acme\ntopic read msp/v1/fleet/acme/#\n" in acl
    assert "pattern read msp/v1/registry/key" in acl
    assert "topic write msp/v1/guardian/#" in acl  # the registry's
    assert (broker / "fleet-passwd").read_text().startswith("guardian.family-sato:$7$")
    listing = tmp_path / "recipients.json"
    assert run(tmp_path, "recipients", "--out", str(listing)) == 0
    entries = {e["id"]: e for e in json.loads(listing.read_text())["recipients"]}
    assert entries["ambulance-1"] == {"id": "ambulance-1", "role": "responder",
                                      "public_key": responder.public_key}
    assert entries["family-sato"] == {"id": "family-sato", "role": "guardian"}


@pytest.mark.parametrize(("args", "words"), [
    (["recipient", "add", "acme", "--role", "insurer"], "'acme' is already a fleet"),
    (["recipient", "add", "public", "--role", "guardian"], "built-in"),
    (["recipient", "add", "bad/name", "--role", "guardian"], "is not an id"),
])
def test_bad_recipients_are_named(tmp_path: Path, args: list[str], words: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "fleet", "add", "acme", "--out", str(tmp_path / "c")) == 0
    assert run(tmp_path, *args, "--out", str(tmp_path / "c")) == 2
    assert words in capsys.readouterr().err


def test_grants_and_pseudonyms() -> None:
    assert [(g.access, g.topic) for g in recipient_grants("insurer", "tokio")] == [
        ("read", "msp/v1/insurer/tokio/#")]
    assert [(g.access, g.topic) for g in recipient_grants("fleet", "acme")] == [
        ("read", "msp/v1/fleet/acme/#")]
    text = acl_text(["acme"], [("insurer", "tokio")])
    users = [line.split()[1] for line in text.splitlines() if line.startswith("user ")]
    assert users == ["registry", "public", "web", "fleet.acme", "insurer.tokio"]
    insurer = text.split("user insurer.tokio\n", 1)[1].split("\n\n", 1)[0]
    assert insurer == "topic read msp/v1/insurer/tokio/#"
    secret = b"k" * 32
    names = {pseudonym(secret, r, "person-1") for r in ("acme", "tokio", "family", "amb")}
    assert len(names) == 4
    assert pseudonym(secret, "acme", "person-1") == pseudonym(secret, "acme", "person-1")


@pytest.mark.parametrize(("args", "words"), [
    (["insurer", "summary", "--month", "2026-13"], "--month '2026-13': expected YYYY-MM"),
    (["insurer", "summary", "--month", "2026-11", "--now", "2026-11-20T00:00:00Z"],
     "--month 2026-11: it has not ended yet (Japan time)"),
    (["guardian", "digest", "--now", "yesterday"], "--now 'yesterday': not an ISO 8601"),
])
def test_summary_and_digest_commands_name_bad_input(
        tmp_path: Path, args: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    SqliteStore(tmp_path / "registry.db").close()
    assert run(tmp_path, *args) == 2
    assert words in capsys.readouterr().err


def test_summary_and_digest_commands_queue_nothing_without_consents(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SqliteStore(tmp_path / "registry.db").close()
    assert run(tmp_path, "insurer", "summary", "--now", "2026-12-01T00:00:00Z") == 0
    assert "queued 0 summaries of 2026-11" in capsys.readouterr().out
    assert run(tmp_path, "guardian", "digest", "--now", "2026-12-01T00:00:00Z") == 0
    assert "queued 0 digests" in capsys.readouterr().out
