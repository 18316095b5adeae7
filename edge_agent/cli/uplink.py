"""``msp-agent uplink``: send a gateway's outbox to the registry over MQTT until it is empty
(``--until-empty``) or until stopped; acked records are pruned from the outbox."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..keys import load_signer
from ..outbox import Outbox
from ..text import plural
from ..uplink import MqttUplink, UplinkConfig


def add_subparser(subparsers: Any) -> None:
    """Register ``uplink``."""
    p = subparsers.add_parser("uplink", help="send the outbox to the registry over MQTT")
    p.add_argument("--outbox", required=True, type=Path, help="outbox database")
    p.add_argument("--key", required=True, type=Path, help="device key (PEM, 0600)")
    p.add_argument("--device", required=True, help="device id (the certificate CN)")
    p.add_argument("--vin", required=True, help="VIN of this vehicle")
    p.add_argument("--broker", default="mqtts://127.0.0.1:8883",
                   help="mqtts://HOST:PORT (mTLS), or mqtt:// (plain, tests only)")  # fmt: skip
    p.add_argument("--ca", type=Path, help="CA of the broker's certificate")
    p.add_argument("--cert", type=Path, help="device certificate from msp-registry enroll")
    p.add_argument("--mqtt311", action="store_true", help="speak MQTT 3.1.1 instead of 5")
    p.add_argument("--window", type=int, default=64, help="records in flight at most [64]")
    p.add_argument("--resend-after", type=float, default=10.0, help="re-send unacked after S")
    p.add_argument("--until-empty", action="store_true", help="exit 0 once the outbox is empty")
    p.add_argument("--timeout", type=float, help="with --until-empty: give up (exit 1) after S")
    p.set_defaults(func=_do_uplink)


def uplink_config(args: argparse.Namespace) -> UplinkConfig:
    """The uplink configuration of the command line."""
    url = urlsplit(args.broker)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(f"--broker {args.broker!r}: expected mqtts://HOST:PORT")
    tls = url.scheme == "mqtts"
    if tls and not (args.ca and args.cert):
        raise ConfigError("--broker mqtts://... needs --ca and --cert (and the device --key)")
    return UplinkConfig(
        device=args.device, host=url.hostname, port=url.port or (8883 if tls else 1883),
        ca_file=args.ca if tls else None, cert_file=args.cert if tls else None,
        key_file=args.key if tls else None, mqtt5=not args.mqtt311, window=args.window,
        resend_after_s=args.resend_after,
    )  # fmt: skip


def _do_uplink(args: argparse.Namespace) -> int:
    config = uplink_config(args)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    outbox = Outbox.open(args.outbox, load_signer(args.key, args.device), args.vin)
    uplink = MqttUplink(config, outbox)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    uplink.start()
    try:
        while not stop.is_set():
            uplink.step(0.1)
            if args.until_empty and outbox.stats().rows == 0:
                return 0
            if deadline is not None and time.monotonic() > deadline:
                unacked = plural(outbox.stats().rows, "record")
                print(f"msp-agent uplink: {unacked} still unacked", file=sys.stderr)
                return 1
    finally:
        uplink.stop()
        outbox.close()
    return 0
