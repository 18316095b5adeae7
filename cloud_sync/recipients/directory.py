"""One registry of recipients: every fleet (``cloud_sync.fleets``) and every recipient of the
other roles (the ``recipients`` table), each with its role, its broker user ``ROLE.NAME`` and
its ACL (``msp/v1/{role}/{NAME}/#``, ``cloud_sync.mosquitto``).

``msp-registry recipient add NAME --role ROLE`` issues the credentials: a client certificate
(mTLS) and, with ``--password``, a password (mosquitto's ``$7$`` hash kept in the secret
files); for a ``responder`` also an X25519 key pair, whose private half only the responder
keeps (``NAME.x25519``, 0600) and whose public half gateways seal emergency profiles to.
A name is one recipient whatever its role: it cannot be a fleet and a guardian at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from msp_protocol import roles
from msp_protocol.errors import ProtocolError
from msp_protocol.jws import b64url
from msp_protocol.topics import check_id

from ..errors import RegistryError
from ..mosquitto import password_hash
from ..pki import DeviceCa, cert_pem, key_pem, write_private
from ..store import Recipient, Store

log = logging.getLogger(__name__)


class RecipientError(RegistryError):
    """A recipient name or role the registry cannot register or serve (names which)."""


@dataclass(frozen=True, slots=True)
class RecipientCredentials:
    """What :func:`add_recipient` wrote: certificate and key (0600), the CA, the password
    file (0600) if asked for, and a responder's X25519 private key file (0600)."""

    user: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    password_file: Path | None
    sealing_key_file: Path | None


def broker_user(role: str, name: str) -> str:
    """The broker user name (and certificate CN) of a recipient: ``ROLE.NAME``."""
    return f"{role}.{name}"


def pseudonym(secret: bytes, recipient: str, person_id: str) -> str:
    """The name ``recipient`` knows ``person_id`` by: pairwise (different for every
    recipient), stable over time; the same function fleets' pseudonyms are."""
    mac = hmac.new(secret, f"{recipient}\x00{person_id}".encode(), hashlib.sha256).digest()
    return "fp-" + b64url(mac)[:22]


def roles_of(store: Store) -> dict[str, str]:
    """Every recipient a consent may name, with its role: fleets (of an enrolled device or
    registered operator), the recipients of the other roles, and the built-in ``public``."""
    found = {d.fleet: roles.FLEET for d in store.devices()}
    found.update({f.id: roles.FLEET for f in store.fleets()})
    for r in store.recipients():
        found.setdefault(r.id, r.role)
    found[roles.PUBLIC] = roles.PUBLIC
    return dict(sorted(found.items()))


def of_role(store: Store, role: str) -> dict[str, Recipient]:
    """The registered recipients of one non-fleet role, by id."""
    return {r.id: r for r in store.recipients() if r.role == role}


def add_recipient(store: Store, ca: DeviceCa, name: str, role: str, out: Path, *,
                  password: bool, now: str) -> RecipientCredentials:  # fmt: skip
    """Register ``name`` as a ``role`` recipient and write its credentials into ``out``;
    adding it again issues new ones. A fleet goes through ``cloud_sync.fleets.add_fleet``.
    Raises ``RecipientError`` for a bad name, an unknown role, or a name another role has.
    Re-run ``msp-registry mosquitto-config`` afterwards: the broker learns users from it."""
    try:
        check_id(name, "recipient")
    except ProtocolError as exc:
        raise RecipientError(str(exc)) from None
    if role not in roles.REGISTRABLE or role == roles.FLEET:
        raise RecipientError(f"role {role!r}: one of {', '.join(roles.REGISTRABLE)} "
                             "(a fleet: msp-registry fleet add)")  # fmt: skip
    if name == roles.PUBLIC:
        raise RecipientError("'public' is the built-in recipient of public statistics")
    known = roles_of(store).get(name)
    if known is not None and known != role:
        raise RecipientError(f"{name!r} is already a {known}; a name is one recipient")
    user = broker_user(role, name)
    issued = ca.issue_client(user)
    out.mkdir(parents=True, exist_ok=True)
    cert_file, key_file, ca_file = out / f"{user}.pem", out / f"{user}.key", out / "device-ca.pem"
    cert_file.write_bytes(cert_pem(issued.cert))
    write_private(key_file, key_pem(issued.key))
    ca_file.write_bytes(cert_pem(ca.cert))
    password_file, hashed = None, None
    if password:
        secret = secrets.token_urlsafe(24)
        password_file = out / f"{user}.secret"
        write_private(password_file, secret.encode() + b"\n")
        hashed = password_hash(secret)
    sealing_file, public = None, None
    if role == roles.RESPONDER:
        private = x25519.X25519PrivateKey.generate()
        sealing_file = out / f"{name}.x25519"
        write_private(sealing_file, private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
        public = b64url(private.public_key().public_bytes_raw())
    store.add_recipient(Recipient(name, role, now, public, hashed))
    log.info("%s %s: credentials in %s", role, name, out)
    return RecipientCredentials(user, ca_file, cert_file, key_file, password_file, sealing_file)


def load_sealing_key(path: Path) -> x25519.X25519PrivateKey:
    """A responder's X25519 private key (PEM, as ``recipient add`` wrote it); raises
    ``RecipientError`` naming the file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise RecipientError(f"{path}: not a readable X25519 private key: {exc}") from None
    if not isinstance(key, x25519.X25519PrivateKey):
        raise RecipientError(f"{path}: a {type(key).__name__}, not an X25519 key")
    return key


def broker_passwords(store: Store) -> dict[str, str]:
    """Password hashes by broker user of every non-fleet recipient that has one."""
    return {broker_user(r.role, r.id): r.password_hash for r in store.recipients()
            if r.password_hash}  # fmt: skip
