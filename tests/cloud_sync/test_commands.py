"""``msp-registry`` commands: enrolment, broker configuration, queries, configuration precedence."""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import json
import math
import stat
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import pytest

from cloud_sync import cli
from cloud_sync.config import RegistryConfig, load_config
from cloud_sync.errors import RegistryError
from cloud_sync.ingest import Ingestor
from cloud_sync.republish import score_of
from cloud_sync.store.sqlite import SqliteStore
from msp_protocol.records import parse_ts
from msp_protocol.topics import rec_topic
from tests.sync_kit import CardIssuer, Gateway, csr_pem, trip


def run(capsys, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--db", str(tmp_path / "registry.db")])
    out, err = capsys.readouterr()
    return code, out, err


def test_mosquitto_config_files_and_modes(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, "mosquitto-config", str(tmp_path / "b"), "--port", "18883",
                       "--registry-port", "11883", "--run-as", getpass.getuser())  # fmt: skip
    assert code == 0 and "mosquitto.conf" in out
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    assert "listener 18883 0.0.0.0" in conf and "listener 11883 127.0.0.1" in conf
    assert "use_identity_as_username true" in conf and "require_certificate true" in conf
    assert "set_tcp_nodelay true" in conf.splitlines()
    acl = (tmp_path / "b" / "acl").read_text().splitlines()
    assert "pattern write msp/v1/dev/%u/rec" in acl and "pattern read msp/v1/dev/%u/ack" in acl
    for secret in ("server.key", "registry.secret", "web.secret", "passwd", "fleet-passwd", "acl"):
        assert stat.S_IMODE((tmp_path / "b" / secret).stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((tmp_path / "ca" / "device-ca.key").stat().st_mode) == 0o600
    passwords = {u: (tmp_path / "b" / f"{u}.secret").read_text().strip()
                 for u in ("registry", "web")}  # fmt: skip
    lines = (tmp_path / "b" / "passwd").read_text().strip().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["registry", "web"]
    for line in lines:
        user, hashed = line.split(":", 1)
        _, seven, rounds, salt, digest = hashed.split("$")
        assert seven == "7"
        expected = hashlib.pbkdf2_hmac("sha512", passwords[user].encode(), base64.b64decode(salt),
                                       int(rounds))  # fmt: skip
        assert base64.b64decode(digest) == expected
    at = acl.index("user web")  # the dashboard reads, never writes
    assert acl[at + 1:at + 3] == ["topic read msp/v1/fleet/#", "topic read msp/v1/public/#"]
    run(capsys, tmp_path, "mosquitto-config", str(tmp_path / "b"), "--run-as", getpass.getuser())
    for user, password in passwords.items():  # kept
        assert (tmp_path / "b" / f"{user}.secret").read_text().strip() == password


def test_fleet_operators_get_read_grants_for_their_fleet(capsys, tmp_path):
    csr = tmp_path / "gw.csr"
    csr.write_bytes(csr_pem(Gateway("gw-1", "JT1234567").key, "gw-1"))
    assert run(capsys, tmp_path, "enroll", "gw-1", "--csr", str(csr), "--vin", "JT1234567",
               "--fleet", "acme")[0] == 0  # fmt: skip
    run(capsys, tmp_path, "mosquitto-config", str(tmp_path / "b"))
    acl = (tmp_path / "b" / "acl").read_text()
    assert "user fleet.acme\ntopic read msp/v1/fleet/acme/#" in acl


@pytest.mark.parametrize(("device", "csr_text", "message"), [
    ("gw-1", "not a csr", "CSR is not a PEM"),
    ("registry", None, "device id 'registry'"),
    ("fleet.acme", None, "device id 'fleet.acme'"),
    ("a/b", None, "device id 'a/b'"),
])  # fmt: skip
def test_enroll_refuses_bad_input(capsys, tmp_path, device, csr_text, message):
    csr = tmp_path / "gw.csr"
    if csr_text is None:
        csr.write_bytes(csr_pem(Gateway("gw-1", "JT1234567").key, "gw-1"))
    else:
        csr.write_text(csr_text)
    code, out, err = run(capsys, tmp_path, "enroll", device, "--csr", str(csr), "--vin",
                         "JT1234567", "--fleet", "acme")  # fmt: skip
    assert code == 2 and message in err and out == ""


def test_enroll_twice_and_revoke_unknown(capsys, tmp_path):
    csr = tmp_path / "gw.csr"
    csr.write_bytes(csr_pem(Gateway("gw-1", "JT1234567").key, "gw-1"))
    args = ("enroll", "gw-1", "--csr", str(csr), "--vin", "JT1234567", "--fleet", "acme")
    assert run(capsys, tmp_path, *args)[1].startswith("-----BEGIN CERTIFICATE-----")
    code, _, err = run(capsys, tmp_path, *args)
    assert code == 2 and "already enrolled" in err
    code, _, err = run(capsys, tmp_path, "revoke", "gw-9")
    assert code == 2 and "gw-9: no such device" in err


def _two_people_three_vehicles(tmp_path: Path, ca, issuer: CardIssuer) -> tuple[str, str]:
    store = SqliteStore(tmp_path / "registry.db")
    ingestor = Ingestor(store, issuer.anchors())
    alice, bob = issuer.card(), issuer.card()
    plan = [("gw-car", "JTCAR00001", alice, 20.0, 4.0),
            ("gw-truck", "JTTRUCK001", alice, 80.0, 0.0),
            ("gw-van", "JTVAN00001", bob, 30.0, 9.0)]  # fmt: skip
    for n, (device, vin, card, km, points) in enumerate(plan):
        gw = Gateway(device, vin)
        store.enroll(gw.device_row(ca))
        session = f"s-{n}"
        tokens = [gw.sign(card.session_start(gw, session), "session.start", session),
                  gw.sign(trip(km, points, day=n), "trip", session)]  # fmt: skip
        ingestor.process([(rec_topic(device), t.encode()) for t in tokens])
    ids = {s.vin: s.person_id for s in store.sessions()}
    store.close()
    return ids["JTCAR00001"], ids["JTVAN00001"]


def test_queries_show_the_n_to_n_registry_and_portable_scores(capsys, tmp_path, device_ca,
                                                              card_issuer):  # fmt: skip
    alice, bob = _two_people_three_vehicles(tmp_path, device_ca, card_issuer)
    code, out, _ = run(capsys, tmp_path, "persons", "--json")
    persons = {p["person"]: p for p in json.loads(out)}
    assert code == 0 and set(persons) == {alice, bob}
    assert (persons[alice]["vehicles"], persons[alice]["km"]) == (2, 100.0)
    sessions = json.loads(run(capsys, tmp_path, "sessions", "--json")[1])
    assert sorted((s["person_id"], s["vin"]) for s in sessions) == sorted(
        [(alice, "JTCAR00001"), (alice, "JTTRUCK001"), (bob, "JTVAN00001")])  # fmt: skip
    vehicles = json.loads(run(capsys, tmp_path, "vehicles", "--json")[1])
    assert {v["vin"]: v["persons"] for v in vehicles} == {"JTCAR00001": 1, "JTTRUCK001": 1,
                                                          "JTVAN00001": 1}  # fmt: skip
    at = "2026-12-01T00:00:00Z"
    score = json.loads(run(capsys, tmp_path, "score", alice, "--at", at, "--json")[1])
    # by hand: 100 - 100 * Σ w·points / Σ w·km, w = exp(-age/90 d), trips end on days 0 and 1
    store = SqliteStore(tmp_path / "registry.db")
    ends = [parse_ts(t.end) for t in store.trips(alice)]
    store.close()
    now = datetime.fromisoformat(at.replace("Z", "+00:00"))
    w = [math.exp(-(now - e).total_seconds() / 86400 / 90) for e in ends]
    expected = 100 - 100 * (w[0] * 4.0 + w[1] * 0.0) / (w[0] * 20.0 + w[1] * 80.0)
    assert score["score"] == round(expected, 1) and score["vehicles"] == 2
    text = run(capsys, tmp_path, "persons")[1]
    assert text.splitlines()[0].split() == ["person", "vehicles", "trips", "km", "score",
                                            "first_seen"]  # fmt: skip
    code, _, err = run(capsys, tmp_path, "score", "p-nobody")
    assert code == 2 and "no person 'p-nobody'" in err


def test_score_of_too_little_driving_is_none(tmp_path, device_ca, card_issuer):
    store = SqliteStore(tmp_path / "registry.db")
    ingestor = Ingestor(store, card_issuer.anchors())
    gw = Gateway("gw-1", "JTCAR00001")
    store.enroll(gw.device_row(device_ca))
    card = card_issuer.card()
    tokens = [gw.sign(card.session_start(gw, "s"), "session.start", "s"),
              gw.sign(trip(3.0, 1.0), "trip", "s")]  # fmt: skip
    ingestor.process([(rec_topic("gw-1"), t.encode()) for t in tokens])
    [person] = store.persons()
    assert score_of(store, person.id) is None  # 3 km is too little to judge
    store.close()


def test_config_precedence(tmp_path):
    toml = tmp_path / "registry.toml"
    toml.write_text('db = "from-toml.db"\nbroker = "mqtt://toml:1"\nshared = true\n'
                    'max_waiting = 5\n')  # fmt: skip
    args = argparse.Namespace(config=str(toml), db=None, broker="mqtt://cli:3", shared=False)
    env = {"MSP_REGISTRY_BROKER": "mqtt://env:2", "MSP_REGISTRY_MAX_WAITING": "7"}
    config = load_config(args, env)
    assert config == RegistryConfig(db=tmp_path / "from-toml.db", broker="mqtt://cli:3",
                                    shared=True, max_waiting=7)  # fmt: skip
    assert config.ca_path == tmp_path / "ca"
    toml.write_text("colour = 'blue'\n")
    with pytest.raises(RegistryError, match="unknown setting 'colour'"):
        load_config(args, {})
    with pytest.raises(RegistryError, match="MSP_REGISTRY_MAX_WAITING"):
        load_config(argparse.Namespace(), {"MSP_REGISTRY_MAX_WAITING": "many"})


def test_audit_reverifies_stored_chains(capsys, tmp_path, device_ca, card_issuer):
    _two_people_three_vehicles(tmp_path, device_ca, card_issuer)
    code, out, _ = run(capsys, tmp_path, "audit", "--json")
    report = {row["device"]: row for row in json.loads(out)}
    assert code == 0 and set(report) == {"gw-car", "gw-truck", "gw-van"}
    assert report["gw-car"]["records"] == 2 and report["gw-car"]["verdict"].startswith("ok")
    store = SqliteStore(tmp_path / "registry.db")  # tamper with the kept evidence
    other = store.chain_records("gw-van")[1]
    store._conn.execute("UPDATE records SET jws = ? WHERE device = 'gw-car' AND seq = 2", (other,))
    store.close()
    code, out, _ = run(capsys, tmp_path, "audit", "--device", "gw-car")
    assert code == 1 and [line.split()[0] for line in out.splitlines()[1:]] == ["gw-car"]
    assert "BROKEN: seq 2" in out


def test_version_and_one_object_answers(capsys, tmp_path, device_ca, card_issuer):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"msp-registry {version('msp-gateway')}"
    _two_people_three_vehicles(tmp_path, device_ca, card_issuer)
    code, out, _ = run(capsys, tmp_path, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and isinstance(stats, dict)
    assert set(stats) == {"counts", "rejections", "withheld"} and stats["counts"]["records"] > 0
