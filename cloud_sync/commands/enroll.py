"""``msp-registry enroll``: issue a gateway's certificate from the device CA and register it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import add_common, load_config
from ..errors import EnrolmentError
from ..pki import DeviceCa, cert_pem
from ..registry import enroll_device
from . import store_of
from .nats_config import add_nats_dir, apply_nats, check_nats_ids


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``enroll``."""
    p = subparsers.add_parser("enroll", help="enrol a gateway: issue its certificate from a CSR")
    p.add_argument("device", help="device id (the certificate CN and topic level)")
    p.add_argument("--csr", required=True, type=Path, help="the gateway's CSR (PEM)")
    p.add_argument("--vin", required=True, help="VIN of the vehicle the gateway is in")
    p.add_argument("--fleet", required=True, help="fleet the vehicle belongs to")
    p.add_argument("--out", type=Path, help="write the certificate here (default: stdout)")
    add_nats_dir(p)
    add_common(p)
    p.set_defaults(func=_do_enroll)


def _do_enroll(args: argparse.Namespace) -> int:
    config = load_config(args)
    check_nats_ids(args, (args.device, "device id"), (args.fleet, "fleet id"))
    try:
        csr = args.csr.read_bytes()
    except OSError as exc:
        raise EnrolmentError(f"{args.csr}: cannot read CSR: {exc}") from None
    store = store_of(config)
    try:
        cert = enroll_device(
            store, DeviceCa.open(config.ca_path), args.device, csr, vin=args.vin, fleet=args.fleet
        )
        apply_nats(args, store)
    finally:
        store.close()
    if args.out:
        args.out.write_bytes(cert_pem(cert))
    else:
        sys.stdout.write(cert_pem(cert).decode())
    return 0
