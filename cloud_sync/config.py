"""The registry's configuration: one frozen dataclass, one loader, one precedence.

Precedence: command line > environment (``MSP_REGISTRY_<FIELD>``, e.g. ``MSP_REGISTRY_DB``)
> TOML file (``--config FILE`` or ``MSP_REGISTRY_CONFIG``; keys are the field names) >
defaults. Paths in the TOML file are relative to that file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RegistryError
from .store.open import parse_store_url

_PATHS = ("db", "secrets_dir", "ca_dir", "anchors", "password_file", "tls_ca", "tls_cert",
          "tls_key")


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Everything ``msp-registry`` needs; ``ca_dir`` defaults to ``ca/`` beside the database
    (for PostgreSQL: beside the secrets directory). ``db`` is a SQLite path or a store URL
    (``sqlite:///PATH``, ``postgresql://...``: ``cloud_sync.store.open``)."""

    db: Path | str = Path("registry.db")
    secrets_dir: Path | None = None
    ca_dir: Path | None = None
    anchors: Path | None = None
    broker: str = "mqtt://127.0.0.1:1883"
    username: str = "registry"
    password_file: Path | None = None
    mqtt311: bool = False
    shared: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_id: str = "msp-registry"
    max_waiting: int = 256
    #: processes verifying signatures for one ``serve`` worker (0: in the worker itself)
    verify_workers: int = 0

    @property
    def ca_path(self) -> Path:
        """Directory of the device CA."""
        if self.ca_dir is not None:
            return self.ca_dir
        path = self.db if isinstance(self.db, Path) else parse_store_url(self.db).path
        if path is not None:
            return path.parent / "ca"
        return (self.secrets_dir.parent if self.secrets_dir else Path()) / "ca"


def _convert(name: str, value: Any, where: str, base: Path | None = None) -> Any:
    field = {f.name: f for f in dataclasses.fields(RegistryConfig)}.get(name)
    if field is None:
        raise RegistryError(f"{where}: unknown setting {name!r}")
    kind = str(field.type)
    try:
        if name == "db" and "://" in str(value):
            return str(value)  # a URL, not a path
        if name in _PATHS:
            path = Path(str(value))
            return base / path if base is not None and not path.is_absolute() else path
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return str(value).lower() in ("1", "true", "yes", "on")
            raise ValueError(f"{value!r} is not a boolean")
        if kind == "int":
            return int(value)
        return str(value)
    except ValueError as exc:
        raise RegistryError(f"{where}: setting {name}: {exc}") from None


def load_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> RegistryConfig:
    """Build the configuration from parsed arguments, the environment and the TOML file."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = getattr(args, "config", None) or env.get("MSP_REGISTRY_CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RegistryError(f"{path}: cannot read configuration: {exc}") from None
        for key, value in data.items():
            values[key] = _convert(key, value, str(path), path.parent)
    for field in dataclasses.fields(RegistryConfig):
        name = f"MSP_REGISTRY_{field.name.upper()}"
        if name in env:
            values[field.name] = _convert(field.name, env[name], f"environment {name}")
    for field in dataclasses.fields(RegistryConfig):
        value = getattr(args, field.name, None)
        if value is not None and value is not False:
            values[field.name] = _convert(field.name, value, f"--{field.name.replace('_', '-')}")
    return RegistryConfig(**values)


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand understands: the configuration file and the database."""
    parser.add_argument("--config", help="TOML configuration file (keys as in RegistryConfig)")
    parser.add_argument("--db", help="registry database: a SQLite file, sqlite:///PATH or"
                        " postgresql://USER@HOST/DB (docs/store.md) [registry.db]")
    parser.add_argument("--secrets-dir", dest="secrets_dir",
                        help="directory of the registry's secret files (0600) [registry.secrets"
                             " beside a SQLite file; required for PostgreSQL]")  # fmt: skip
    parser.add_argument("--ca-dir", dest="ca_dir", help="device CA directory [ca/ beside --db]")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
