"""Logins: mosquitto's ``$7$`` hashes checked properly, session cookies that cannot be forged,
outlive their expiry or the password they were issued under; operator credentials 0600."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync import cli
from cloud_sync.mosquitto import password_hash
from cloud_sync.store import Fleet
from cloud_sync.store.sqlite import SqliteStore
from cloud_sync.web.auth import (
    Credentials,
    Principal,
    Sessions,
    basic_credentials,
    check_password,
    principal_of,
    session_key,
)
from cloud_sync.web.errors import WebError
from cloud_sync.web.operators import OPERATOR_PASSWORDS, add_operator, operator_hashes


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_check_password_accepts_only_the_password(password: str, other: str) -> None:
    hashed = password_hash(password)
    usable = "\x00" not in password  # HMAC pads keys with NULs: refused, not confused
    assert check_password(password, hashed) == usable
    assert check_password(other, hashed) == (other == password and usable)
    assert not check_password(password + "\x00", hashed)


@pytest.mark.parametrize("bad", ["", "$6$101$c2FsdA==$ZGln", "$7$x$c2FsdA==$ZGln",
                                 "$7$0$c2FsdA==$ZGln", "$7$101$!!$ZGln", "$7$101$c2FsdA==$",
                                 "7$101$c2FsdA==$ZGln", "$7$99999999999$c2FsdA==$ZGln"])
def test_malformed_hashes_match_nothing(bad: str) -> None:
    assert not check_password("", bad) and not check_password("x", bad)


def test_hashes_mosquitto_passwd_made(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is not installed: run scripts/test (it installs it)")
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run([tool, "-b", str(passwd), "fleet.acme", "s3cret pass"], check=True)
    user, hashed = passwd.read_text().strip().split(":", 1)
    assert user == "fleet.acme" and hashed.startswith("$7$")
    assert check_password("s3cret pass", hashed) and not check_password("s3cret Pass", hashed)


def test_principals_and_basic_header() -> None:
    assert principal_of("fleet.acme") == Principal("fleet.acme", "fleet", "acme")
    assert principal_of("operator.ops") == Principal("operator.ops", "operator", "ops")
    assert principal_of("registry") is None and principal_of("fleet.") is None
    assert basic_credentials("Basic ZmxlZXQuYWNtZTpwdw==") == ("fleet.acme", "pw")
    assert basic_credentials("Bearer x") is None and basic_credentials("Basic !!") is None
    assert basic_credentials("Basic bm9jb2xvbg==") is None  # "nocolon"


def test_sessions(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "registry.db")
    try:
        store.add_fleet(Fleet("acme", "2026-11-01T00:00:00Z", password_hash("pw-1")))
        store.add_fleet(Fleet("nopw", "2026-11-01T00:00:00Z"))
        secrets = tmp_path / "registry.secrets"
        creds = Credentials(store, secrets)
        now = [1_800_000_000.0]
        sessions = Sessions(session_key(secrets), creds, 3600, lambda: now[0])
        assert stat.S_IMODE((secrets / "web-session.key").stat().st_mode) == 0o600
        acme = creds.verify("fleet.acme", "pw-1")
        assert acme == Principal("fleet.acme", "fleet", "acme")
        assert creds.verify("fleet.acme", "pw-2") is None
        assert creds.verify("fleet.nopw", "") is None and creds.verify("fleet.none", "x") is None
        cookie = sessions.issue(acme)
        assert sessions.check(cookie) == acme
        user, expiry, mac = cookie.split("~")
        assert sessions.check(f"fleet.globex~{expiry}~{mac}") is None  # another fleet's name
        assert sessions.check(f"{user}~{int(expiry) + 9999}~{mac}") is None  # a later expiry
        assert sessions.check(f"{user}~{expiry}~{mac[:-2]}AA") is None
        assert sessions.check("garbage") is None and sessions.check("") is None
        other = Sessions(b"k" * 32, creds, 3600, lambda: now[0])
        assert other.check(cookie) is None  # another key
        now[0] += 3601
        assert sessions.check(cookie) is None  # expired
        now[0] -= 3601
        store.add_fleet(Fleet("acme", "2026-11-01T00:00:00Z", password_hash("pw-2")))
        assert sessions.check(cookie) is None  # a new password ends the old sessions
    finally:
        store.close()


def test_operator_add_command(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    SqliteStore(db).close()
    out = tmp_path / "creds"
    assert cli.main(["operator", "add", "ops", "--out", str(out), "--db", str(db)]) == 0
    secret = out / "operator.ops.secret"
    hashes_file = tmp_path / "registry.secrets" / OPERATOR_PASSWORDS
    for path in (secret, hashes_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    assert password not in hashes_file.read_text()
    assert check_password(password, operator_hashes(tmp_path / "registry.secrets")["ops"])
    again = add_operator(tmp_path / "registry.secrets", "ops", out)  # a new password
    assert again.password_file.read_text().strip() != password
    assert cli.main(["operator", "add", "bad/name", "--out", str(out), "--db", str(db)]) == 2
    hashes_file.write_text("ops:plain\n")
    with pytest.raises(WebError, match="line 1"):
        operator_hashes(tmp_path / "registry.secrets")
