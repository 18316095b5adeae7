"""``msp-registry mosquitto-config``: write a mosquitto 2.0 configuration for this registry."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_common, load_config
from ..fleets import broker_users
from ..mosquitto import BrokerLayout, write_config
from ..pki import DeviceCa
from ..recipients.directory import broker_passwords
from ..registry import revoked_serials
from ..store.open import store_exists
from . import store_of


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``mosquitto-config``."""
    d = BrokerLayout()
    p = subparsers.add_parser(
        "mosquitto-config",
        help="write mosquitto.conf, ACL, certificates and the registry's password into OUTDIR",
    )
    p.add_argument("outdir", type=Path)
    p.add_argument("--port", type=int, default=d.device_port, help="mTLS port for gateways")
    p.add_argument("--bind", default=d.device_bind, help="address of the gateway listener")
    p.add_argument("--registry-port", type=int, default=d.registry_port,
                   help="loopback port for the registry")  # fmt: skip
    p.add_argument("--fleet-port", type=int, default=d.fleet_port,
                   help="TLS port where fleet operators log in with a password (0: none)")
    p.add_argument("--host", action="append", dest="hosts",
                   help="server certificate host name or IP (repeatable)")  # fmt: skip
    p.add_argument("--run-as", default=d.run_as,
                   help="user mosquitto drops privileges to; written as root, the files are"
                        " made readable to it [%(default)s]")  # fmt: skip
    add_common(p)
    p.set_defaults(func=_do_config)


def _do_config(args: argparse.Namespace) -> int:
    config = load_config(args)
    fleets: set[str] = set()
    passwords: dict[str, str] = {}
    revoked: list[int] = []
    recipients: list[tuple[str, str]] = []
    recipient_passwords: dict[str, str] = {}
    if store_exists(config.db):
        store = store_of(config)
        try:
            fleets, passwords = broker_users(store)
            revoked = revoked_serials(store)
            recipients = [(r.role, r.id) for r in store.recipients()]
            recipient_passwords = broker_passwords(store)
        finally:
            store.close()
    layout = BrokerLayout(
        device_port=args.port,
        device_bind=args.bind,
        registry_port=args.registry_port,
        hosts=tuple(args.hosts) if args.hosts else BrokerLayout().hosts,
        run_as=args.run_as,
        fleet_port=args.fleet_port or None,
    )
    files = write_config(args.outdir, DeviceCa.open(config.ca_path), layout, fleets, passwords,
                         revoked=revoked, recipients=recipients,
                         recipient_passwords=recipient_passwords)  # fmt: skip
    print(f"wrote {files.config}; start it with: mosquitto -c {files.config}")
    print("(under Debian's mosquitto.service: see docs/sync.md, The broker configuration)")
    print(f"the registry logs in with --password-file {files.registry_secret}")
    return 0
