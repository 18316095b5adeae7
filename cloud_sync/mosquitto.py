"""Broker configuration for mosquitto 2.0: mTLS device listener, registry listener, ACL file.

What :func:`write_config` writes into its output directory:

* ``mosquitto.conf`` — ``per_listener_settings true``; a device listener (mTLS against the
  device CA, ``use_identity_as_username`` so the certificate CN is the ACL user name, and
  ``crlfile``: certificates of revoked devices are refused at the TLS handshake) and a
  loopback listener where the registry logs in as user ``registry`` with a password;
  ``max_packet_size`` bounds what any client may publish (:data:`MAX_PACKET_BYTES`; not
  ``message_size_limit``, which mosquitto 2.0 deprecates for it);
* ``acl`` — per DESIGN.md, from the one rule set of ``cloud_sync.broker_rules``: a gateway
  writes only ``msp/v1/dev/<its id>/rec`` and reads only its ``ack`` and ``reply``; a fleet
  operator (certificate CN ``fleet.<fleet>``) reads only ``msp/v1/fleet/<fleet>/#``; a
  recipient of another role (``<role>.<name>``) only ``msp/v1/<role>/<name>/#``; everyone the
  registry's key; the registry reads every ``rec`` and writes acks and what it republishes;
* a fleet listener (TLS, server certificate only) where fleet operators without a client
  certificate log in as ``fleet.<fleet>`` with the password ``msp-registry fleet add
  --password`` issued, as recipients of the other roles do with ``recipient add --password``
  (``fleet-passwd``, hashes only);
* ``passwd`` (PBKDF2-SHA512, mosquitto's ``$7$`` format) and ``registry.secret`` (0600, the
  registry's password, kept across runs so a running registry keeps working); ``web.secret``
  likewise for the dashboard (``msp-registry web``, user ``web``: reads ``msp/v1/fleet/#``
  and ``msp/v1/public/#`` on the registry listener, writes nothing);
* ``device-ca.pem``, ``device-ca.crl.pem`` (the CA's list of revoked device certificates),
  ``server.pem``, ``server.key``.

Who may read them: mosquitto 2.0 started as root drops to its ``user`` as soon as it has read
``mosquitto.conf`` and only then opens everything else, so written as root for another
``run_as`` user (Debian's ``mosquitto.service`` starts it as root with ``user mosquitto``),
the directory and what mosquitto reads belong to ``root:<that user's group>`` (0750, keys and
password hashes 0640), ``data/`` (persistence) to the user itself, and ``registry.secret``
(the registry's, not the broker's) stays root's, 0600. Written as anyone else, everything is
the writer's, 0600: mosquitto must then run as that user.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import os
import pwd
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from msp_protocol.records import MAX_RECORD_BYTES

from .broker_rules import (
    EVERYONE_GRANTS,
    PUBLIC_GRANTS,
    REGISTRY_GRANTS,
    WEB_GRANTS,
    Grant,
    device_grants,
    fleet_grants,
    recipient_grants,
)
from .errors import PkiError
from .ingest import MAX_PAYLOAD_BYTES
from .pki import CRL_FILE, FLEET_PREFIX, DeviceCa, cert_pem, key_pem, write_private

log = logging.getLogger(__name__)

REGISTRY_USER = "registry"
#: The dashboard (``msp-registry web``): reads what the registry republishes, writes nothing.
WEB_USER = "web"
#: The read-only user anyone may log in as on the fleet listener to read public statistics;
#: its password is published, not secret (docs/public.md).
PUBLIC_USER = "public"
PUBLIC_PASSWORD = "public"  # noqa: S105 - published on purpose: anyone may read
_PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default in 2.0

#: The broker's limit on one MQTT packet. mosquitto applies it to every client alike, so it is
#: the largest message anyone may legitimately publish: the registry's fleet copy of the
#: largest record, which carries the record's body as ASCII-escaped JSON (at most 3 x the
#: record's bytes) beside the record's JWS (``MAX_PAYLOAD_BYTES``), plus topic and properties.
#: A gateway's payload over ``MAX_PAYLOAD_BYTES`` but under this gets to the registry, which
#: counts it ``oversized``; anything larger the broker refuses (it disconnects the client).
MAX_PACKET_BYTES: Final = 3 * MAX_RECORD_BYTES + MAX_PAYLOAD_BYTES + 4096


@dataclass(frozen=True, slots=True)
class BrokerLayout:
    """Where the broker listens and how it runs; defaults suit a single-host deployment."""

    device_port: int = 8883
    device_bind: str = "0.0.0.0"  # noqa: S104 - gateways connect from the network
    registry_port: int = 1883
    #: TLS listener where fleet operators log in with a password; ``None``: no such listener
    fleet_port: int | None = 8884
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    run_as: str = "mosquitto"
    max_queued_messages: int = 10000
    max_packet_size: int = MAX_PACKET_BYTES


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Paths of what :func:`write_config` wrote."""

    config: Path
    acl: Path
    registry_secret: Path
    ca_cert: Path
    crl: Path | None = None


def password_hash(password: str, salt: bytes | None = None) -> str:
    """The ``$7$`` (PBKDF2-SHA512) line part mosquitto 2.0's ``password_file`` understands."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${_PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def acl_text(fleets: Iterable[str], recipients: Iterable[tuple[str, str]] = ()) -> str:
    """The ACL file: registry rights, the read-only public and web users, one read grant per
    fleet operator and per recipient of another role (``(role, name)``), device patterns, all
    from the rule set of ``cloud_sync.broker_rules``."""
    lines = ["# generated by msp-registry mosquitto-config: see DESIGN.md, Topics",
             f"user {REGISTRY_USER}", *_acl_lines(REGISTRY_GRANTS), "",
             "# anyone: public statistics, read only (docs/public.md)",
             f"user {PUBLIC_USER}", *_acl_lines(PUBLIC_GRANTS), "",
             f"user {WEB_USER}", *_acl_lines(WEB_GRANTS), ""]  # fmt: skip
    for fleet in sorted(set(fleets)):
        lines += [f"user {FLEET_PREFIX}{fleet}", *_acl_lines(fleet_grants(fleet)), ""]
    for role, name in sorted(set(recipients)):
        lines += [f"user {role}.{name}", *_acl_lines(recipient_grants(role, name)), ""]
    lines += [
        "# every certificate user: a gateway writes only its own rec and reads only its own ack",
        *_acl_lines(device_grants("%u"), "pattern"),
        "# every user: the registry's public key",
        *_acl_lines(EVERYONE_GRANTS, "pattern"),
        "",
    ]
    return "\n".join(lines)


def _acl_lines(grants: Iterable[Grant], keyword: str = "topic") -> list[str]:
    return [f"{keyword} {grant.access} {grant.topic}" for grant in grants]


def config_text(outdir: Path, layout: BrokerLayout) -> str:
    """The ``mosquitto.conf`` for files laid out in ``outdir`` (absolute paths)."""
    d = outdir.resolve()
    return "\n".join(
        [
            "# generated by msp-registry mosquitto-config (mosquitto 2.0)",
            "per_listener_settings true",
            f"user {layout.run_as}",
            "persistence true",
            f"persistence_location {d}/data/",
            f"max_queued_messages {layout.max_queued_messages}",
            "# no client publishes more than the registry's fleet copy of the largest record",
            f"max_packet_size {layout.max_packet_size}",
            "# records and acks are small and latency-bound: no Nagle delay",
            "set_tcp_nodelay true",
            "",
            "# gateways: mutual TLS against the device CA; the certificate CN is the user name",
            f"listener {layout.device_port} {layout.device_bind}",
            f"cafile {d}/device-ca.pem",
            f"certfile {d}/server.pem",
            f"keyfile {d}/server.key",
            "require_certificate true",
            "# revoked devices are refused at the handshake (re-read on SIGHUP)",
            f"crlfile {d}/{CRL_FILE}",
            "use_identity_as_username true",
            "allow_anonymous false",
            f"acl_file {d}/acl",
            "",
            "# the registry, on loopback only, with a password",
            f"listener {layout.registry_port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {d}/passwd",
            f"acl_file {d}/acl",
            "",
            *_fleet_listener(d, layout),
        ]
    )


def _fleet_listener(d: Path, layout: BrokerLayout) -> list[str]:
    if layout.fleet_port is None:
        return []
    return [
        "# fleet operators without a client certificate: TLS and a password",
        f"listener {layout.fleet_port} {layout.device_bind}",
        f"certfile {d}/server.pem",
        f"keyfile {d}/server.key",
        "allow_anonymous false",
        f"password_file {d}/fleet-passwd",
        f"acl_file {d}/acl",
        "",
    ]


def write_config(
    outdir: Path,
    ca: DeviceCa,
    layout: BrokerLayout,
    fleets: Iterable[str] = (),
    fleet_passwords: Mapping[str, str] | None = None,
    *,
    revoked: Iterable[int] = (),
    recipients: Iterable[tuple[str, str]] = (),
    recipient_passwords: Mapping[str, str] | None = None,
) -> BrokerFiles:
    """Write a complete mosquitto configuration into ``outdir``; returns the paths written.
    ``fleet_passwords`` maps a fleet to its ``$7$`` password hash (``Fleet.password_hash``);
    ``revoked`` are the serial numbers of revoked device certificates (for the CRL);
    ``recipients`` the ``(role, name)`` of every recipient of another role, and
    ``recipient_passwords`` the hashes by broker user ``role.name`` of those with one. Raises
    ``PkiError`` if ``layout.run_as`` is no user of this system (when written as root)."""
    owner = broker_owner(layout.run_as)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "data").mkdir(exist_ok=True)
    server = ca.issue_server(layout.hosts)
    write_private(outdir / "device-ca.pem", cert_pem(ca.cert))
    write_private(outdir / CRL_FILE, ca.crl_pem(revoked))
    write_private(outdir / "server.pem", cert_pem(server.cert))
    write_private(outdir / "server.key", key_pem(server.key))
    secret_file = outdir / "registry.secret"
    if secret_file.exists():
        password = secret_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(24)
        write_private(secret_file, password.encode() + b"\n")
    web_password = _kept_secret(outdir / "web.secret")
    write_private(outdir / "passwd", (f"{REGISTRY_USER}:{password_hash(password)}\n"
                                      f"{WEB_USER}:{password_hash(web_password)}\n").encode())
    passwords = fleet_passwords or {}
    users = {f"{FLEET_PREFIX}{fleet}": hashed for fleet, hashed in passwords.items()}
    users.update(recipient_passwords or {})
    write_private(outdir / "fleet-passwd", "".join(
        f"{user}:{hashed}\n" for user, hashed in sorted(users.items())
    ).encode() + f"{PUBLIC_USER}:{password_hash(PUBLIC_PASSWORD)}\n".encode())  # fmt: skip
    write_private(outdir / "acl", acl_text({*fleets, *passwords}, recipients).encode())
    config = outdir / "mosquitto.conf"
    write_private(config, config_text(outdir, layout).encode())
    if owner is not None:
        _hand_over(outdir, *owner)
    log.info("wrote mosquitto configuration to %s", config)
    return BrokerFiles(config, outdir / "acl", secret_file, outdir / "device-ca.pem",
                       outdir / CRL_FILE)  # fmt: skip


#: What mosquitto reads, beside ``mosquitto.conf``; ``registry.secret`` is not among them.
_BROKER_READS = ("mosquitto.conf", "acl", "passwd", "fleet-passwd", "device-ca.pem", CRL_FILE,
                 "server.pem", "server.key")  # fmt: skip


def _kept_secret(path: Path) -> str:
    """The password in ``path``, made (0600) if it is not there yet."""
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    write_private(path, password.encode() + b"\n")
    return password


def broker_owner(run_as: str) -> tuple[int, int] | None:
    """The uid and gid to hand a broker's files to: only when written as root for another
    user; raises ``PkiError`` if there is no such user."""
    if os.geteuid() != 0:
        if run_as != getpass.getuser():
            log.warning("the broker files are yours and 0600, but the broker is to run as %r:"
                        " write them as root, or give --run-as %s", run_as, getpass.getuser())
        return None
    try:
        user = pwd.getpwnam(run_as)
    except KeyError:
        raise PkiError(f"--run-as {run_as}: no such user on this system") from None
    return None if user.pw_uid == 0 else (user.pw_uid, user.pw_gid)


def _hand_over(outdir: Path, uid: int, gid: int) -> None:
    """Let the unprivileged broker user read what mosquitto reads and write its persistence."""
    os.chown(outdir, 0, gid)
    os.chmod(outdir, 0o750)  # noqa: S103 - root's and the broker group's only
    for name in _BROKER_READS:
        os.chown(outdir / name, 0, gid)
        os.chmod(outdir / name, 0o640)
    os.chown(outdir / "data", uid, gid)
    os.chmod(outdir / "data", 0o700)
    for kept in (outdir / "data").iterdir():  # a persistence file from an earlier run as root
        os.chown(kept, uid, gid)
