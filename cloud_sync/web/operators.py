"""Registry operators' web credentials (``msp-registry operator add NAME``).

An operator logs in to the dashboard as ``operator.NAME`` and sees the gateways' health and
the rejection counts, never a person's data. Its password hash (mosquitto's ``$7$`` form,
``cloud_sync.mosquitto.password_hash``) is a line ``NAME:HASH`` in ``operator-passwords``
(0600) among the registry's secret files (``cloud_sync.secret_files``), never in the database.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from msp_protocol.errors import ProtocolError
from msp_protocol.topics import check_id

from ..mosquitto import password_hash
from ..pki import write_private
from .errors import WebError

OPERATOR_PASSWORDS = "operator-passwords"
OPERATOR_PREFIX = "operator."


@dataclass(frozen=True, slots=True)
class OperatorCredentials:
    """What :func:`add_operator` issued: the user name and the file with the password."""

    user: str
    password_file: Path


def operator_hashes(secrets_dir: Path) -> dict[str, str]:
    """Password hashes by operator name (empty when no operator was added)."""
    path = secrets_dir / OPERATOR_PASSWORDS
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise WebError(f"{path}: cannot read operator password hashes: {exc}") from None
    hashes = {}
    for number, line in enumerate(text.splitlines(), start=1):
        name, sep, hashed = line.partition(":")
        if not sep or not name or not hashed.startswith("$7$"):
            raise WebError(f"{path}, line {number}: expected NAME:$7$...")
        hashes[name] = hashed
    return hashes


def add_operator(secrets_dir: Path, name: str, out: Path) -> OperatorCredentials:
    """Issue ``name`` a new password (replacing an earlier one): the hash goes to the secret
    files, the password to ``out/operator.NAME.secret`` (0600)."""
    try:
        check_id(name, "operator name")
    except ProtocolError as exc:
        raise WebError(str(exc)) from None
    password = secrets.token_urlsafe(24)
    hashes = operator_hashes(secrets_dir)
    hashes[name] = password_hash(password)
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(secrets_dir / OPERATOR_PASSWORDS,
                  "".join(f"{n}:{h}\n" for n, h in sorted(hashes.items())).encode())
    out.mkdir(parents=True, exist_ok=True)
    user = OPERATOR_PREFIX + name
    password_file = out / f"{user}.secret"
    write_private(password_file, password.encode() + b"\n")
    return OperatorCredentials(user, password_file)
