"""``msp-registry serve``: verify, store and ack every gateway's records from the broker."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from ..config import add_common, load_config
from ..registry import serve
from .nats_config import add_nats_dir


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve``."""
    p = subparsers.add_parser("serve", help="run a registry worker on the broker")
    p.add_argument("--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT [mqtt://127.0.0.1:1883],"
                   " or nats://HOST:PORT,... (every node of a NATS cluster: JetStream)")
    p.add_argument("--username", help="broker user name [registry]")
    p.add_argument(
        "--password-file", dest="password_file",
        help="file holding the broker password (mosquitto-config's registry.secret)",
    )  # fmt: skip
    p.add_argument("--anchors", help="directory of trusted card issuer certificates and CRLs")
    p.add_argument("--mqtt311", action="store_true", help="speak MQTT 3.1.1 instead of 5")
    p.add_argument(
        "--shared", action="store_true",
        help="subscribe as $share/registry/... so several workers share the load",
    )  # fmt: skip
    p.add_argument("--client-id", dest="client_id", help="MQTT client id [msp-registry]")
    p.add_argument(
        "--verify-workers", dest="verify_workers", type=int,
        help="processes verifying signatures for this worker, so it uses several cores [0: none]",
    )  # fmt: skip
    p.add_argument("--tls-ca", dest="tls_ca", help="CA of the broker's certificate (mqtts)")
    p.add_argument("--tls-cert", dest="tls_cert", help="registry client certificate (mqtts)")
    p.add_argument("--tls-key", dest="tls_key", help="registry client key (mqtts)")
    add_nats_dir(p, "serve on this nats-config OUTDIR's NATS cluster (JetStream): its URLs,"
                    " password and certificates")
    add_common(p)
    p.set_defaults(func=_do_serve)


def _do_serve(args: argparse.Namespace) -> int:
    config = load_config(args)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve(config, stop, args.nats_dir)
    return 0
