"""What ``--db`` names: a path or ``sqlite:///PATH`` (SQLite), ``postgresql://…``; the
configuration keeps a URL as it is, and messages never show its password."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cloud_sync.config import RegistryConfig, load_config
from cloud_sync.errors import StoreError
from cloud_sync.store.open import parse_store_url, redact, store_exists


@pytest.mark.parametrize(("db", "kind", "path"), [
    ("registry.db", "sqlite", Path("registry.db")),
    (Path("/var/lib/r.db"), "sqlite", Path("/var/lib/r.db")),
    ("sqlite:///rel/r.db", "sqlite", Path("rel/r.db")),
    ("sqlite:////var/lib/r.db", "sqlite", Path("/var/lib/r.db")),
    ("postgresql://msp@db:5432/registry", "postgresql", None),
    ("postgres://msp@db/registry?sslmode=verify-full", "postgresql", None),
])  # fmt: skip
def test_a_db_value_names_its_back_end(db: str | Path, kind: str, path: Path | None) -> None:
    parsed = parse_store_url(db)
    assert (parsed.kind, parsed.path) == (kind, path)


@pytest.mark.parametrize("db", ["sqlite://r.db", "sqlite:///", "mysql://h/d"])
def test_a_db_value_the_registry_cannot_open_is_refused(db: str) -> None:
    with pytest.raises(StoreError, match="sqlite:///PATH"):
        parse_store_url(db)


def test_passwords_never_reach_a_message(tmp_path: Path) -> None:
    url = "postgresql://msp:s3cret@db.example:6432/registry"
    assert redact(url) == "postgresql://msp:***@db.example:6432/registry"
    assert "s3cret" not in parse_store_url(url).display
    assert redact("postgresql://msp@db/r") == "postgresql://msp@db/r"
    assert store_exists(url) and not store_exists(tmp_path / "none.db")


def test_the_configuration_keeps_a_url_and_finds_the_ca_beside_the_secrets(tmp_path: Path) -> None:
    toml = tmp_path / "registry.toml"
    toml.write_text('db = "postgresql://msp@db/registry"\nsecrets_dir = "secrets"\n')
    args = argparse.Namespace(config=str(toml), db=None, secrets_dir=None)
    config = load_config(args, env={})
    assert config.db == "postgresql://msp@db/registry"
    assert config.secrets_dir == tmp_path / "secrets" and config.ca_path == tmp_path / "ca"
    env = {"MSP_REGISTRY_DB": "sqlite:///x/registry.db"}
    assert load_config(argparse.Namespace(), env=env).ca_path == Path("x/ca")
    assert RegistryConfig().ca_path == Path("ca")
