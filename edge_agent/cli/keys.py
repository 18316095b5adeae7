"""``msp-agent keys init``: create the device key (0600) and a CSR for enrolment."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ..keys import init_device_key

DEFAULT_KEY = Path(os.environ.get("MSP_KEY", "/var/lib/msp-agent/device.key"))


def add_subparser(subparsers: Any) -> None:
    """Register ``keys`` and its ``init`` subcommand."""
    parser = subparsers.add_parser("keys", help="manage the device key")
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    init = actions.add_parser(
        "init",
        help="create the device key and a CSR beside it; prints the public key (PEM)",
        description="Create the device signing key (mode 0600, owner only) and write its "
        "certificate signing request (CN = device id) for enrolment beside it, named like the "
        "key with the suffix .csr: --key /etc/msp/device.key writes /etc/msp/device.csr. "
        "Prints the public key (PEM) on standard output.",
    )
    init.add_argument(
        "--key", type=Path, default=DEFAULT_KEY, help="key file (default: $MSP_KEY or %(default)s)"
    )
    init.add_argument(
        "--device",
        default=os.environ.get("MSP_DEVICE") or socket.gethostname(),
        help="device id, the JWS kid and the certificate CN (default: $MSP_DEVICE or hostname)",
    )
    init.add_argument(
        "--alg",
        choices=("EdDSA", "ES256"),
        default="EdDSA",
        help="EdDSA (Ed25519, default) or ES256 (P-256, for keys that may move to a TPM)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing key")
    init.set_defaults(func=_do_init)


def _do_init(args: argparse.Namespace) -> int:
    key = init_device_key(args.key, args.device, alg=args.alg, force=args.force)
    sys.stdout.write(key.public_pem)
    print(
        f"{key.alg} key for {key.device} in {key.key_path}, CSR in {key.csr_path} (for "
        f"msp-registry enroll {key.device} --csr {key.csr_path.name} ...)",
        file=sys.stderr,
    )
    return 0
