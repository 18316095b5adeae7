"""``msp-registry fleet add | list | watch``: fleet operators' credentials and feeds."""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..config import add_common, load_config
from ..errors import RegistryError
from ..fleet_watch import FleetMessage, watch
from ..fleets import add_fleet, fleet_user
from ..pki import DeviceCa
from ..worker import BrokerConfig
from . import emit, store_of
from .nats_config import add_nats_dir, apply_nats, check_nats_ids


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``fleet`` and its subcommands."""
    parser = subparsers.add_parser("fleet", help="fleet operators: credentials and feeds")
    sub = parser.add_subparsers(dest="fleet_command", required=True, metavar="FLEET_COMMAND")

    p = sub.add_parser("add", help="register a fleet and issue its operator's credentials")
    p.add_argument("fleet", help="fleet id (the topic level msp/v1/fleet/FLEET)")
    p.add_argument("--out", type=Path, required=True,
                   help="directory for fleet.FLEET.pem/.key (0600), device-ca.pem, .secret")
    p.add_argument("--password", action="store_true",
                   help="also issue a password (for clients without certificates)")
    add_nats_dir(p)
    add_common(p)
    p.set_defaults(func=_do_add)

    p = sub.add_parser("list", help="registered fleets and what was withheld from them")
    add_common(p)
    p.set_defaults(func=_do_list)

    p = sub.add_parser("watch", help="subscribe to fleets' feeds, verify every JWS, print")
    p.add_argument("fleets", nargs="+", metavar="FLEET",
                   help="fleet id; several are printed side by side (needs --creds)")
    p.add_argument("--broker", required=True, help="mqtts://HOST:PORT (or mqtt:// for a demo)")
    p.add_argument("--tls-ca", type=Path, help="CA of the broker's certificate")
    p.add_argument("--tls-cert", type=Path, help="client certificate (one fleet)")
    p.add_argument("--tls-key", type=Path, help="client key (one fleet)")
    p.add_argument("--creds", type=Path,
                   help="directory `fleet add --out` wrote: fleet.FLEET.pem/.key per fleet")
    p.add_argument("--password-file", type=Path,
                   help="log in as fleet.FLEET with this password instead of a certificate")
    p.add_argument("--mqtt311", action="store_true", help="MQTT 3.1.1 instead of 5")
    p.add_argument("--count", type=int, help="stop after this many records and scores")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="stop when nothing arrived for this many seconds (default %(default)s)")
    p.add_argument("--width", type=int, default=60, help="column width side by side")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.set_defaults(func=_do_watch)


def _do_add(args: argparse.Namespace) -> int:
    config = load_config(args)
    check_nats_ids(args, (args.fleet, "fleet id"))
    store = store_of(config)
    try:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        creds = add_fleet(store, DeviceCa.open(config.ca_path), args.fleet, args.out,
                          password=args.password, now=now)  # fmt: skip
        apply_nats(args, store)
    finally:
        store.close()
    print(f"fleet {args.fleet}: user {creds.user}, certificate {creds.cert_file}, "
          f"key {creds.key_file}, CA {creds.ca_file}")  # fmt: skip
    if creds.password_file is not None:
        print(f"password in {creds.password_file} (for the TLS password listener)")
    print("re-run msp-registry mosquitto-config (and reload mosquitto) to let it in")
    return 0


def _do_list(args: argparse.Namespace) -> int:
    store = store_of(load_config(args), must_exist=True)
    try:
        withheld = store.withheld()
        rows = [{"fleet": f.id, "added_at": f.added_at,
                 "login": "certificate+password" if f.password_hash else "certificate",
                 "withheld": sum(n for w, n in withheld.items() if w.fleet == f.id)}
                for f in store.fleets()]  # fmt: skip
    finally:
        store.close()
    emit(rows, ["fleet", "login", "withheld", "added_at"], args.json)
    return 0


def broker_for(args: argparse.Namespace, fleet: str) -> BrokerConfig:
    """How ``fleet``'s operator connects, from the watch command's options."""
    cert, key = args.tls_cert, args.tls_key
    if args.creds is not None:
        cert = args.creds / f"{fleet_user(fleet)}.pem"
        key = args.creds / f"{fleet_user(fleet)}.key"
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text().strip()
        except OSError as exc:
            raise RegistryError(f"{args.password_file}: cannot read password: {exc}") from None
        cert = key = None
    return BrokerConfig(url=args.broker, username=fleet_user(fleet), password=password,
                        client_id=f"{fleet_user(fleet)}-watch-{os.getpid()}",
                        mqtt5=not args.mqtt311,
                        ca_file=args.tls_ca, cert_file=cert, key_file=key)  # fmt: skip


def _do_watch(args: argparse.Namespace) -> int:
    fleets: Sequence[str] = args.fleets
    if len(fleets) > 1 and args.creds is None:
        raise RegistryError("several fleets need --creds DIR (one certificate per fleet)")
    configs = {fleet: broker_for(args, fleet) for fleet in fleets}
    lock = threading.Lock()
    errors: list[RegistryError] = []

    def run(fleet: str) -> None:
        try:
            for message in watch(fleet, configs[fleet], args.timeout, args.count):
                with lock:
                    _print(message, fleets.index(fleet), args)
        except RegistryError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,), daemon=True) for f in fleets]
    if len(fleets) > 1 and not args.json:
        print("".join(f"== {f} ==".ljust(args.width) for f in fleets).rstrip())
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return 0


def _print(message: FleetMessage, column: int, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"fleet": message.fleet, "topic": message.topic, "kind": message.kind,
                          "check": message.check, "message": message.value}), flush=True)
        return
    text = f"{_mark(message.check)} {message.text}"
    if message.check not in ("verified", "registry"):
        text += f" [{message.check}]"
    if len(args.fleets) > 1:
        text = side_by_side(text, column, args.width)
    print(text, flush=True)


def side_by_side(text: str, column: int, width: int) -> str:
    """``text`` in column ``column`` of ``width`` characters, one left as a gap; a longer text
    is cut and ends in an ellipsis, so a cut line never reads as a whole one."""
    if len(text) > width - 1:
        text = text[: max(width - 2, 0)] + "…"
    return " " * (width * column) + text


def _mark(check: str) -> str:
    """✓ JWS verified, · published by the registry itself, ○ a copy without the original JWS
    (positions removed, or a session start), ✗ rejected."""
    if check == "verified":
        return "✓"
    if check == "registry":
        return "·"
    return "○" if check.startswith("no jws") else "✗"
