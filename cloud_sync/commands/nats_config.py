"""``msp-registry nats-config``: write a NATS cluster's configuration for this registry."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import add_common, load_config
from ..errors import RegistryError
from ..nats_config import (
    AUTH_FILE,
    DEFAULT_HOSTS,
    DEFAULT_MQTT_BIND,
    NatsLayout,
    NatsNode,
    check_nats_id,
    default_layout,
    nats_users,
    update_auth,
    write_config,
)
from ..pki import DeviceCa
from ..store import Store
from ..store.open import store_exists
from . import store_of


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nats-config``."""
    d = NatsNode("n1")
    p = subparsers.add_parser(
        "nats-config",
        help="write a NATS cluster's node configurations, permissions, certificates and the"
             " registry's password into OUTDIR",
    )  # fmt: skip
    p.add_argument("outdir", type=Path)
    p.add_argument("--nodes", type=int, default=3, help="cluster size [%(default)s]")
    p.add_argument("--node", action="append", dest="node_specs", metavar="HOST[:C:R:M:H]",
                   help="one node (repeat per node, overrides --nodes): the host the others"
                        " reach it at and optionally its client, route, MQTT and monitor"
                        f" ports [{d.client_port}:{d.cluster_port}:{d.mqtt_port}:"
                        f"{d.monitor_port}; shifted per node on a shared host]")
    p.add_argument("--bind", default=DEFAULT_MQTT_BIND,
                   help="address of the MQTT listener for gateways [%(default)s]")
    p.add_argument("--client-bind",
                   help="address of the NATS client listener for the registry [127.0.0.1 if"
                        " every node is on loopback, else 0.0.0.0: firewall it to the"
                        " registry's hosts]")
    p.add_argument("--host", action="append", dest="hosts",
                   help="server certificate host name or IP (repeatable)")
    p.add_argument("--run-as", default="nats",
                   help="user nats-server runs as; written as root, the files are made"
                        " readable to it [%(default)s]")  # fmt: skip
    add_common(p)
    p.set_defaults(func=_do_config)


def parse_node(index: int, spec: str) -> NatsNode:
    """A ``--node HOST[:CLIENT:ROUTE:MQTT:MONITOR]`` value as node ``n<index+1>``."""
    host, *ports = spec.split(":")
    if not host or len(ports) not in (0, 4):
        raise RegistryError(f"--node {spec!r}: expected HOST or HOST:CLIENT:ROUTE:MQTT:MONITOR")
    if not ports:
        return NatsNode(f"n{index + 1}", host)
    try:
        numbers = [int(p) for p in ports]
    except ValueError:
        raise RegistryError(f"--node {spec!r}: ports must be numbers") from None
    if not all(0 < n < 65536 for n in numbers):
        raise RegistryError(f"--node {spec!r}: ports must be 1-65535")
    return NatsNode(f"n{index + 1}", host, *numbers)


def _layout(args: argparse.Namespace) -> NatsLayout:
    if args.node_specs:
        nodes = tuple(parse_node(i, spec) for i, spec in enumerate(args.node_specs))
        if all(":" not in spec for spec in args.node_specs):  # default ports, shifted if shared
            nodes = default_layout(len(nodes), [n.host for n in nodes]).nodes
    else:
        nodes = default_layout(args.nodes).nodes
    hosts = tuple(args.hosts) if args.hosts else DEFAULT_HOSTS
    client_bind = args.client_bind
    if client_bind is None:
        local = all(n.host in ("127.0.0.1", "localhost", "::1") for n in nodes)
        client_bind = "127.0.0.1" if local else "0.0.0.0"  # noqa: S104 - remote registry hosts
    return NatsLayout(nodes, mqtt_bind=args.bind, client_bind=client_bind, hosts=hosts,
                      run_as=args.run_as)  # fmt: skip


def _do_config(args: argparse.Namespace) -> int:
    config = load_config(args)
    layout = _layout(args)
    devices: list[str] = []
    fleets: set[str] = set()
    recipients: list[tuple[str, str]] = []
    if store_exists(config.db):
        store = store_of(config)
        try:
            devices, fleets, recipients = nats_users(store)
        finally:
            store.close()
    files = write_config(args.outdir, DeviceCa.open(config.ca_path), layout, devices, fleets,
                         recipients=recipients)  # fmt: skip
    for path in files.configs:
        print(f"wrote {path}; start it with: nats-server -c {path}")
    print(f"permissions of {len(devices)} devices and {len(fleets)} fleets in {files.auth}")
    print(f"the registry connects to {','.join(files.client_urls)} as user registry with"
          f" --password-file {files.registry_secret}")  # fmt: skip
    return 0


def add_nats_dir(p: argparse.ArgumentParser, what: str | None = None) -> None:
    """The ``--nats-dir`` option (env ``MSP_REGISTRY_NATS_DIR``): the deployment uses NATS."""
    what = what or ("the deployment uses NATS: rewrite this nats-config OUTDIR's auth.conf"
                    " and reload the nodes running here")
    p.add_argument("--nats-dir", type=Path, default=os.environ.get("MSP_REGISTRY_NATS_DIR"),
                   help=f"{what} (env MSP_REGISTRY_NATS_DIR)")


def check_nats_ids(args: argparse.Namespace, *ids: tuple[str, str]) -> None:
    """Refuse, before anything changes, an id that NATS cannot carry (with ``--nats-dir``)."""
    if args.nats_dir is not None:
        for value, what in ids:
            check_nats_id(value, what)


def apply_nats(args: argparse.Namespace, store: Store) -> None:
    """With ``--nats-dir``: rewrite its ``auth.conf`` from ``store`` and reload the nodes."""
    if args.nats_dir is None:
        return
    reloaded = update_auth(Path(args.nats_dir), store)
    print(f"rewrote {Path(args.nats_dir) / AUTH_FILE}; reloaded {reloaded} NATS node(s) here"
          " (elsewhere: copy it there and run nats-server --signal reload=PID)")
