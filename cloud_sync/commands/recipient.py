"""``msp-registry recipient add | list``: recipients of every role (fleets, insurers,
guardians, responders), one registry of them (``cloud_sync.recipients.directory``); and the
options and loop the role watchers share (``guardian|insurer|responder watch``)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from msp_protocol import roles

from ..config import add_common, load_config
from ..errors import RegistryError
from ..fleets import add_fleet
from ..pki import DeviceCa
from ..recipients.directory import add_recipient, broker_user, roles_of
from ..recipients.signing import registry_key
from ..recipients.watch import Checker, watch
from ..transport.mqtt import BrokerConfig
from . import emit, store_of


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``recipient`` and its subcommands."""
    parser = subparsers.add_parser("recipient", help="recipients of every role: credentials")
    sub = parser.add_subparsers(dest="recipient_command", required=True, metavar="ACTION")
    p = sub.add_parser("add", help="register a recipient and issue its credentials")
    p.add_argument("name", help="recipient id (the topic level msp/v1/ROLE/NAME)")
    p.add_argument("--role", required=True, choices=roles.REGISTRABLE, help="its role")
    p.add_argument("--out", type=Path, required=True,
                   help="directory for ROLE.NAME.pem/.key (0600), device-ca.pem, .secret and, "
                        "for a responder, NAME.x25519 (its sealing key, 0600)")
    p.add_argument("--password", action="store_true",
                   help="also issue a password (for clients without certificates)")
    add_common(p)
    p.set_defaults(func=_do_add)
    p = sub.add_parser("list", help="every recipient a consent may name, with its role")
    add_common(p)
    p.set_defaults(func=_do_list)


def _do_add(args: argparse.Namespace) -> int:
    config = load_config(args)
    store = store_of(config)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        ca = DeviceCa.open(config.ca_path)
        if args.role == roles.FLEET:
            fleet = add_fleet(store, ca, args.name, args.out, password=args.password, now=now)
            user, cert, secret, sealing = fleet.user, fleet.cert_file, fleet.password_file, None
        else:
            creds = add_recipient(store, ca, args.name, args.role, args.out,
                                  password=args.password, now=now)  # fmt: skip
            user, cert, secret = creds.user, creds.cert_file, creds.password_file
            sealing = creds.sealing_key_file
    finally:
        store.close()
    print(f"{args.role} {args.name}: user {user}, certificate {cert}; reads "
          f"msp/v1/{args.role}/{args.name}/#")
    if secret is not None:
        print(f"password in {secret} (for the TLS password listener)")
    if sealing is not None:
        print(f"sealing key in {sealing}: only the responder keeps it (gateways seal "
              "emergency profiles to its public half: msp-registry recipients --out)")
    print("re-run msp-registry mosquitto-config (and reload mosquitto) to let it in, and "
          "msp-registry recipients --out FILE for the gateways")
    return 0


def _do_list(args: argparse.Namespace) -> int:
    store = store_of(load_config(args), must_exist=True)
    try:
        keys = {r.id: r.public_key for r in store.recipients()}
        rows = [{"id": i, "role": role, "reads": f"msp/v1/{role}/{i}/#",
                 "may_be_given": ",".join(sorted(roles.ALLOWED.get(role, ()))),
                 "sealing_key": keys.get(i)} for i, role in roles_of(store).items()]  # fmt: skip
    finally:
        store.close()
    emit(rows, ["id", "role", "may_be_given", "reads"], args.json)
    return 0


# -- what the role watchers share ----------------------------------------------------------


def add_watch_options(p: argparse.ArgumentParser) -> None:
    """The connection and output options of ``ROLE watch NAME``."""
    p.add_argument("name", help="the recipient's name")
    p.add_argument("--broker", required=True, help="mqtts://HOST:PORT (or mqtt:// for a demo)")
    p.add_argument("--tls-ca", type=Path, help="CA of the broker's certificate")
    p.add_argument("--tls-cert", type=Path, help="client certificate (ROLE.NAME.pem)")
    p.add_argument("--tls-key", type=Path, help="client key (ROLE.NAME.key)")
    p.add_argument("--password-file", type=Path, help="log in as ROLE.NAME with this password")
    p.add_argument("--registry-key", type=Path,
                   help="the registry's public key (msp-registry key --out); default: the one "
                        "retained on msp/v1/registry/key")
    p.add_argument("--mqtt311", action="store_true", help="MQTT 3.1.1 instead of 5")
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="stop when nothing arrived for this many seconds (default %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per message")


def run_watch(args: argparse.Namespace, role: str, checker: Checker) -> int:
    """Connect as ``role.NAME``, print every checked message; 1 if any was rejected."""
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text().strip()
        except OSError as exc:
            raise RegistryError(f"{args.password_file}: cannot read password: {exc}") from None
    if args.registry_key is not None:
        try:
            checker.key = registry_key(args.registry_key.read_bytes())
        except OSError as exc:
            raise RegistryError(f"{args.registry_key}: {exc}") from None
    user = broker_user(role, args.name)
    config = BrokerConfig(url=args.broker, username=user, password=password,
                          client_id=f"{user}-watch-{os.getpid()}", mqtt5=not args.mqtt311,
                          ca_file=args.tls_ca,
                          cert_file=None if password else args.tls_cert,
                          key_file=None if password else args.tls_key)  # fmt: skip
    rejected = 0
    for message in watch(role, args.name, config, args.timeout, count=args.count,
                         checker=checker):
        ok = message.check == "verified"
        rejected += not ok
        if args.json:
            print(json.dumps({"topic": message.topic, "kind": message.kind,
                              "check": message.check, "message": message.value},
                             ensure_ascii=False), flush=True)  # fmt: skip
            continue
        mark = "✓" if ok else "✗"
        for i, line in enumerate(message.lines):
            print(f"{mark if i == 0 else ' '} {line}", flush=True)
        if not ok:
            print(f"  [{message.check}]", flush=True)
    return 1 if rejected else 0
