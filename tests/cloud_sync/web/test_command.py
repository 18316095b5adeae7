"""``msp-registry web``'s command line: the extra is imported only when the command runs, a
bad ``--bind`` or a missing database is a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud_sync import cli
from cloud_sync.commands.web import parse_bind
from cloud_sync.errors import RegistryError


def test_the_cli_does_not_import_the_web_extra() -> None:
    code = ("import sys, cloud_sync.cli as c; c.build_parser(); bad = [m for m in"
            " ('fastapi', 'starlette', 'uvicorn', 'pydantic') if m in sys.modules];"
            " print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bind() -> None:
    assert parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    for bad in ("8080", "host:", ":80", "h:0", "h:70000", "h:x"):
        with pytest.raises(RegistryError, match="HOST:PORT"):
            parse_bind(bad)


def test_web_refuses_a_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["web", "--db", str(tmp_path / "none.db"), "--bind", "127.0.0.1:1"]) == 2
    assert "no registry database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
