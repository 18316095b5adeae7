"""``msp-registry revoke``: refuse every further record of a gateway (stolen, scrapped), and
issue the device CA's CRL so that the broker refuses its certificate too."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from ..config import add_common, load_config
from ..fleets import key_publication
from ..pki import CRL_FILE, DeviceCa, write_private
from ..registry import revoked_serials
from ..store import Batch
from . import store_of
from .nats_config import add_nats_dir, apply_nats


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``revoke``."""
    p = subparsers.add_parser(
        "revoke", help="revoke a gateway: its records refused, its certificate in the CRL"
    )
    p.add_argument("device", help="device id")
    p.add_argument("--mosquitto-dir", type=Path,
                   help="also replace the CRL in this mosquitto-config OUTDIR (then reload"
                        " mosquitto: systemctl reload mosquitto)")  # fmt: skip
    add_nats_dir(p)
    add_common(p)
    p.set_defaults(func=_do_revoke)


def _do_revoke(args: argparse.Namespace) -> int:
    config = load_config(args)
    store = store_of(config, must_exist=True)
    try:
        store.revoke(args.device, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        device = store.device(args.device)
        if device is not None:  # the fleet learns that this key signs nothing new
            store.commit(Batch(publications=[key_publication(device.fleet, device)]))
        serials = revoked_serials(store)
        apply_nats(args, store)  # a revoked device is no NATS user: refused, dropped on reload
    finally:
        store.close()
    print(f"revoked {args.device}: the registry refuses its records")
    ca = DeviceCa.open(config.ca_path, create=False)
    print(f"CRL of {len(serials)} revoked certificates: {ca.write_crl(serials)}")
    if args.mosquitto_dir is not None:
        target = args.mosquitto_dir / CRL_FILE
        old = target.stat() if target.exists() else None
        write_private(target, ca.crl_pem(serials))
        if old is not None:  # keep what mosquitto-config gave the broker's user
            os.chown(target, old.st_uid, old.st_gid)
            os.chmod(target, old.st_mode & 0o777)
        print(f"replaced {target}; reload mosquitto (SIGHUP: systemctl reload mosquitto) and it"
              " refuses the certificate at the handshake")
    else:
        print("re-run mosquitto-config (or give --mosquitto-dir) and reload mosquitto for the"
              " broker to refuse the certificate too")
    return 0
