"""Configuration of a NATS cluster (Debian's ``nats-server`` 2.9, JetStream, its MQTT listener)
carrying the same traffic as mosquitto, with the same permissions.

What :func:`write_config` writes into its output directory:

* ``<node>.conf`` per node — ``server_name``; the NATS client listener (where the registry
  logs in); a ``cluster`` block with routes to every other node, authenticated with the
  password in ``cluster.secret``; ``jetstream`` with its own store under ``data/<node>``; the
  MQTT listener for gateways and fleet operators (mutual TLS against the device CA,
  ``verify_and_map``: the certificate subject, e.g. ``CN=gw-0001``, is the user); a ``pid_file``
  (``data/<node>.pid``) for :func:`reload_nodes`; ``include auth.conf``;
* ``auth.conf`` — the users and their subject permissions, from the rules of
  ``cloud_sync.broker_rules`` that mosquitto's ACL is made of (:func:`auth_text`): the registry
  (NATS-native, password in ``registry.secret``, 0600) with JetStream's API beside its topics,
  one user per enrolled, unrevoked device (NATS has no ``%u`` pattern, so enrolment and
  revocation rewrite this file and reload the nodes), one per fleet operator (certificate
  ``CN=fleet.<fleet>``); MQTT users also get ``$MQTT.sub.>``, which any QoS 1 subscription
  needs (the gateways' ack subscription is QoS 0, the fleets' QoS 1);
* ``device-ca.pem``, ``server.pem``, ``server.key``; ``registry-mqtt.pem``/``.key`` (0600,
  ``CN=registry``, a name no device may take): the registry's certificate for the MQTT
  listener, over which it sends retained publications, since a NATS publish has no retain
  flag; ``cluster.json``, the nodes' ``nats://`` and ``mqtts://`` URLs, which ``msp-registry
  serve --nats-dir`` reads with the secrets.

A revoked device is no user any more: NATS refuses its certificate at the MQTT CONNECT and,
on reload, drops its connection. NATS 2.9 reads no CRL, so this is how revocation reaches it.
MQTT topics are NATS subjects with ``/`` turned into ``.``, and NATS refuses a ``.`` in an
MQTT topic ("characters ' ' and '.' not supported for MQTT topics"): a device or fleet id with
a ``.`` cannot be carried, and :func:`check_nats_id` refuses it.

Written as root for another ``run_as`` user (Debian's ``nats`` user), the directory and what
the servers read belong to ``root:<its group>`` (0750, 0640) and each store to the user;
``registry.secret`` stays root's. Written as anyone else, everything is the writer's, 0600.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from .broker_rules import (
    EVERYONE_GRANTS,
    REGISTRY_GRANTS,
    Grant,
    device_grants,
    fleet_grants,
    recipient_grants,
)
from .errors import RegistryError
from .mosquitto import MAX_PACKET_BYTES, REGISTRY_USER, broker_owner
from .pki import FLEET_PREFIX, DeviceCa, cert_pem, key_pem, write_private
from .store import Store

log = logging.getLogger(__name__)

AUTH_FILE: Final = "auth.conf"
REGISTRY_SECRET: Final = "registry.secret"  # noqa: S105 - a file name
CLUSTER_SECRET: Final = "cluster.secret"  # noqa: S105 - a file name
CLUSTER_USER: Final = "route"
CLUSTER_FILE: Final = "cluster.json"
REGISTRY_MQTT_CERT: Final = "registry-mqtt.pem"
REGISTRY_MQTT_KEY: Final = "registry-mqtt.key"

#: What the registry's NATS-native user needs beside its topics: JetStream's API (streams,
#: consumers, pulling), acknowledging messages, and the inboxes replies come back on.
REGISTRY_JETSTREAM_PUBLISH: Final = ("$JS.API.>", "$JS.ACK.>")
REGISTRY_JETSTREAM_SUBSCRIBE: Final = ("_INBOX.>",)
#: The delivery subjects of NATS's MQTT listener: any QoS 1 subscription needs them (without,
#: the server logs "Subscription Violation ... $MQTT.sub..." and the subscription gets
#: nothing). MQTT clients cannot name them: a filter starting ``$MQTT/`` is refused.
MQTT_DELIVERY: Final = "$MQTT.sub.>"

_UNSUPPORTED = frozenset(". *>")
DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1")
DEFAULT_MQTT_BIND: Final = "0.0.0.0"  # noqa: S104 - gateways connect from the network


class NatsConfigError(RegistryError):
    """The NATS configuration cannot be written or reloaded (names the id, node or file)."""


@dataclass(frozen=True, slots=True)
class NatsNode:
    """One server of the cluster: its name, the host the others reach it at, its ports."""

    name: str
    host: str = "127.0.0.1"
    client_port: int = 4222
    cluster_port: int = 6222
    mqtt_port: int = 8883
    monitor_port: int = 8222

    @property
    def client_url(self) -> str:
        """``nats://HOST:PORT`` of the NATS client listener."""
        return f"nats://{self.host}:{self.client_port}"


@dataclass(frozen=True, slots=True)
class NatsLayout:
    """The cluster: its nodes, where MQTT and NATS clients may connect from, the server
    certificate's names, and the user the servers run as."""

    nodes: tuple[NatsNode, ...]
    mqtt_bind: str = DEFAULT_MQTT_BIND
    client_bind: str = "127.0.0.1"
    hosts: tuple[str, ...] = DEFAULT_HOSTS
    cluster_name: str = "msp"
    run_as: str = "nats"

    @property
    def replicas(self) -> int:
        """Copies of each JetStream stream: every node, at most 3 (JetStream's advice)."""
        return min(len(self.nodes), 3)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise NatsConfigError("a NATS cluster needs at least one node")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise NatsConfigError(f"node names repeat: {names}")
        used: set[tuple[str, int]] = set()
        for node in self.nodes:
            for port in (node.client_port, node.cluster_port, node.mqtt_port, node.monitor_port):
                if (node.host, port) in used:
                    raise NatsConfigError(f"node {node.name}: {node.host}:{port} is taken twice")
                used.add((node.host, port))


def default_layout(count: int, hosts: Sequence[str] = ()) -> NatsLayout:
    """``count`` nodes ``n1``... on ``hosts`` (one each; loopback if none), on the default
    ports, shifted by the node's index where two nodes share a host."""
    if count < 1:
        raise NatsConfigError(f"--nodes {count}: at least 1")
    if hosts and len(hosts) != count:
        raise NatsConfigError(f"{len(hosts)} node hosts for {count} nodes")
    nodes = []
    for i in range(count):
        host = hosts[i] if hosts else "127.0.0.1"
        shift = i if sum(1 for h in (hosts or ["127.0.0.1"] * count) if h == host) > 1 else 0
        d = NatsNode(f"n{i + 1}")
        nodes.append(NatsNode(d.name, host, d.client_port + shift, d.cluster_port + shift,
                              d.mqtt_port + shift, d.monitor_port + shift))  # fmt: skip
    return NatsLayout(tuple(nodes))


@dataclass(frozen=True, slots=True)
class NatsFiles:
    """Paths of what :func:`write_config` wrote."""

    configs: tuple[Path, ...]
    auth: Path
    registry_secret: Path
    ca_cert: Path
    client_urls: tuple[str, ...]


def check_nats_id(value: str, what: str) -> str:
    """``value`` if NATS can carry it as one subject token; NatsConfigError naming it if not."""
    bad = sorted(_UNSUPPORTED & set(value))
    if bad:
        raise NatsConfigError(f"{what} {value!r}: contains {' '.join(map(repr, bad))}, which"
                              " NATS's MQTT listener refuses in a topic (a subject token)")
    return value


def subjects(topic: str) -> tuple[str, ...]:
    """The NATS subjects an MQTT topic filter covers, as NATS's MQTT listener maps them:
    ``/`` → ``.``, ``+`` → ``*``, ``#`` → ``>``; a trailing ``#`` also matches its parent."""
    levels = topic.split("/")
    for level in levels:
        if level not in ("+", "#"):
            check_nats_id(level, f"topic {topic!r}: level")
    mapped = [{"+": "*", "#": ">"}.get(level, level) for level in levels]
    if mapped[-1] == ">":
        return (".".join(mapped[:-1]), ".".join(mapped))
    return (".".join(mapped),)


def _permissions(grants: Iterable[Grant], publish: Sequence[str] = (),
                 subscribe: Sequence[str] = ()) -> dict[str, object]:  # fmt: skip
    pub = [s for g in grants if g.access == "write" for s in subjects(g.topic)] + list(publish)
    sub = [s for g in grants if g.access == "read" for s in subjects(g.topic)] + list(subscribe)
    return {
        # an empty allow list would allow everything: deny all instead
        "publish": {"allow": pub} if pub else {"deny": [">"]},
        "subscribe": {"allow": sub} if sub else {"deny": [">"]},
    }


def certificate_user(common_name: str) -> str:
    """The NATS user of a certificate with this CN: ``verify_and_map`` names the client by its
    subject as an RFC 2253 string (``CN=gw-0001``)."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]).rfc4514_string()


def auth_text(registry_password: str, devices: Iterable[str], fleets: Iterable[str],
              recipients: Iterable[tuple[str, str]] = ()) -> str:  # fmt: skip
    """``auth.conf``: the registry, one user per device, one per fleet operator, one per
    recipient of another role (``(role, name)``, certificate CN ``role.name``); every one of
    them may read the registry's key."""
    users: list[dict[str, object]] = [{
        "user": REGISTRY_USER, "password": registry_password,
        "permissions": _permissions(REGISTRY_GRANTS, REGISTRY_JETSTREAM_PUBLISH,
                                    REGISTRY_JETSTREAM_SUBSCRIBE),
    }, {
        # the registry on the MQTT listener, for retained publications (a NATS publish
        # cannot be retained): its writes only
        "user": certificate_user(REGISTRY_USER),
        "permissions": _permissions([g for g in REGISTRY_GRANTS if g.access == "write"]),
    }]  # fmt: skip
    for device in sorted(set(devices)):
        check_nats_id(device, "device id")
        users.append({"user": certificate_user(device),
                      "permissions": _permissions((*device_grants(device), *EVERYONE_GRANTS),
                                                  (), (MQTT_DELIVERY,))})  # fmt: skip
    for fleet in sorted(set(fleets)):
        check_nats_id(fleet, "fleet id")
        users.append({"user": certificate_user(FLEET_PREFIX + fleet),
                      "permissions": _permissions((*fleet_grants(fleet), *EVERYONE_GRANTS),
                                                  (), (MQTT_DELIVERY,))})  # fmt: skip
    for role, name in sorted(set(recipients)):
        check_nats_id(name, f"{role} name")
        users.append({"user": certificate_user(f"{role}.{name}"),
                      "permissions": _permissions((*recipient_grants(role, name),
                                                   *EVERYONE_GRANTS), (), (MQTT_DELIVERY,))})
    lines = ["# generated by msp-registry nats-config: see DESIGN.md, Topics (rules shared with",
             "# the mosquitto ACL in cloud_sync/broker_rules.py)",
             "authorization {", "  users = ["]  # fmt: skip
    lines += [f"    {json.dumps(user)}" for user in users]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def node_text(outdir: Path, layout: NatsLayout, node: NatsNode, cluster_password: str) -> str:
    """The configuration file of ``node`` (absolute paths into ``outdir``)."""
    d = outdir.resolve()
    q = json.dumps
    routes = [f"nats-route://{CLUSTER_USER}:{cluster_password}@{n.host}:{n.cluster_port}"
              for n in layout.nodes if n != node]  # fmt: skip
    return "\n".join([
        "# generated by msp-registry nats-config (nats-server 2.9)",
        f"server_name: {q(node.name)}",
        f"listen: {q(f'{layout.client_bind}:{node.client_port}')}",
        f"http: {q(f'127.0.0.1:{node.monitor_port}')}",
        f"pid_file: {q(str(d / 'data' / f'{node.name}.pid'))}",
        "# no client publishes more than the registry's fleet copy of the largest record",
        f"max_payload: {MAX_PACKET_BYTES}",
        "",
        "jetstream {",
        f"  store_dir: {q(str(d / 'data' / node.name))}",
        "}",
        "",
        "cluster {",
        f"  name: {q(layout.cluster_name)}",
        f"  listen: {q(f'{node.host}:{node.cluster_port}')}",
        f"  authorization {{ user: {q(CLUSTER_USER)}, password: {q(cluster_password)} }}",
        f"  routes: {json.dumps(routes)}",
        "}",
        "",
        "# gateways and fleet operators: mutual TLS against the device CA; the certificate",
        "# subject (CN=<id>) is the user of auth.conf",
        "mqtt {",
        f"  listen: {q(f'{layout.mqtt_bind}:{node.mqtt_port}')}",
        "  tls {",
        f"    cert_file: {q(str(d / 'server.pem'))}",
        f"    key_file: {q(str(d / 'server.key'))}",
        f"    ca_file: {q(str(d / 'device-ca.pem'))}",
        "    verify_and_map: true",
        "  }",
        "  # the listener's own streams (sessions, QoS 1 messages, retained messages) on every",
        "  # node: left to itself it sizes them by the nodes it saw at the first MQTT connection,",
        "  # and an R2 stream loses its quorum with one of its two nodes",
        f"  stream_replicas: {layout.replicas}",
        "}",
        "",
        f"include {AUTH_FILE}",
        "",
    ])  # fmt: skip


def _secret(path: Path) -> str:
    """The password kept in ``path`` (0600), made on first use and kept across runs."""
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    write_private(path, password.encode() + b"\n")
    return password


def nats_users(store: Store) -> tuple[list[str], set[str], list[tuple[str, str]]]:
    """The devices (enrolled, not revoked), fleets and recipients of other roles (``(role,
    name)``) the cluster must know."""
    devices = [d.id for d in store.devices() if not d.revoked]
    fleets = {d.fleet for d in store.devices()} | {f.id for f in store.fleets()}
    for fleet in store.fleets():
        if fleet.password_hash:
            log.warning("fleet %s has a password: NATS's MQTT listener takes certificates only"
                        " (its operator logs in with fleet.%s.pem)", fleet.id, fleet.id)
    return devices, fleets, [(r.role, r.id) for r in store.recipients()]


def write_config(outdir: Path, ca: DeviceCa, layout: NatsLayout, devices: Iterable[str] = (),
                 fleets: Iterable[str] = (), *,
                 recipients: Iterable[tuple[str, str]] = ()) -> NatsFiles:  # fmt: skip
    """Write every node's configuration, the shared ``auth.conf``, the certificates and the
    secrets into ``outdir``; returns the paths written. Raises NatsConfigError for an id NATS
    cannot carry, ``PkiError`` if ``layout.run_as`` is no user here (when written as root)."""
    owner = broker_owner(layout.run_as)
    outdir.mkdir(parents=True, exist_ok=True)
    for node in layout.nodes:
        (outdir / "data" / node.name).mkdir(parents=True, exist_ok=True)
    server = ca.issue_server(layout.hosts)
    write_private(outdir / "device-ca.pem", cert_pem(ca.cert))
    write_private(outdir / "server.pem", cert_pem(server.cert))
    write_private(outdir / "server.key", key_pem(server.key))
    registry_password = _secret(outdir / REGISTRY_SECRET)
    if not (outdir / REGISTRY_MQTT_CERT).exists():
        issued = ca.issue_client(REGISTRY_USER)
        write_private(outdir / REGISTRY_MQTT_KEY, key_pem(issued.key))
        write_private(outdir / REGISTRY_MQTT_CERT, cert_pem(issued.cert))
    write_private(outdir / CLUSTER_FILE, json.dumps({
        "client_urls": [n.client_url for n in layout.nodes],
        "mqtt_urls": [f"mqtts://{n.host}:{n.mqtt_port}" for n in layout.nodes],
        "replicas": layout.replicas,
    }, indent=2).encode())  # fmt: skip
    cluster_password = _secret(outdir / CLUSTER_SECRET)
    auth = write_auth(outdir, devices, fleets, registry_password, recipients=recipients)
    configs = []
    for node in layout.nodes:
        config = outdir / f"{node.name}.conf"
        write_private(config, node_text(outdir, layout, node, cluster_password).encode())
        configs.append(config)
    if owner is not None:
        _hand_over(outdir, layout, *owner)
    log.info("wrote NATS configuration of %d nodes to %s", len(configs), outdir)
    return NatsFiles(tuple(configs), auth, outdir / REGISTRY_SECRET, outdir / "device-ca.pem",
                     tuple(n.client_url for n in layout.nodes))  # fmt: skip


def write_auth(outdir: Path, devices: Iterable[str], fleets: Iterable[str],
               registry_password: str | None = None, *,
               recipients: Iterable[tuple[str, str]] = ()) -> Path:  # fmt: skip
    """(Re)write ``auth.conf`` for these devices, fleets and recipients, keeping the file's
    owner and mode (what ``nats-config`` gave the servers' user); returns its path."""
    if registry_password is None:
        secret = outdir / REGISTRY_SECRET
        try:
            registry_password = secret.read_text().strip()
        except OSError as exc:
            raise NatsConfigError(f"{secret}: cannot read the registry's password ({exc}):"
                                  " is this an msp-registry nats-config directory?") from None
    target = outdir / AUTH_FILE
    old = target.stat() if target.exists() else None
    write_private(target, auth_text(registry_password, devices, fleets, recipients).encode())
    if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        os.chown(target, old.st_uid, old.st_gid)
    if old is not None:
        os.chmod(target, old.st_mode & 0o777)
    return target


def update_auth(outdir: Path, store: Store) -> int:
    """Rewrite ``auth.conf`` from the registry's devices and fleets and reload the nodes whose
    pid file is in ``outdir/data`` (those running on this host); returns how many were reloaded."""
    devices, fleets, recipients = nats_users(store)
    write_auth(outdir, devices, fleets, recipients=recipients)
    return reload_nodes(outdir)


def reload_nodes(outdir: Path) -> int:
    """Send SIGHUP (what ``nats-server --signal reload=PID`` sends) to every node whose
    ``data/<node>.pid`` is in ``outdir`` and which runs; returns how many were signalled."""
    signalled = 0
    for pid_file in sorted((outdir / "data").glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.info("%s: no running node to reload (%s)", pid_file, exc)
            continue
        signalled += 1
        log.info("reloaded NATS node %s (pid %d)", pid_file.stem, pid)
    return signalled


#: What the servers read; the secrets are the registry's, not theirs.
def _server_reads(layout: NatsLayout) -> list[str]:
    return [AUTH_FILE, "device-ca.pem", "server.pem", "server.key",
            *(f"{n.name}.conf" for n in layout.nodes)]  # fmt: skip


def _hand_over(outdir: Path, layout: NatsLayout, uid: int, gid: int) -> None:
    """Let the unprivileged server user read its files and write its store and pid file."""
    os.chown(outdir, 0, gid)
    os.chmod(outdir, 0o750)  # noqa: S103 - root's and the servers' group's only
    for name in _server_reads(layout):
        os.chown(outdir / name, 0, gid)
        os.chmod(outdir / name, 0o640)
    os.chown(outdir / "data", uid, gid)  # stores and pid files
    for node in layout.nodes:
        store = outdir / "data" / node.name
        os.chown(store, uid, gid)
        os.chmod(store, 0o700)
