"""``msp-agent card``: serve a virtual card, make a test card, show a card's status, log in;
the person's own acts (``consent``, ``my-data``, ``succeed``) are in ``card_person``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from ..card.apdu import ApduChannel
from ..card.errors import CardFileNotFoundError
from ..card.image import load_image, make_test_card, save_image
from ..card.issuer import TestIssuer
from ..card.jpki import JpkiClient
from ..card.licence import LicenceClient, LicenceData
from ..card.transport import CardTransport, open_transport
from ..card.virtual import VirtualCard
from ..card.vpcd import VPCD_DEFAULT_PORT, VpcdCard
from ..errors import ConfigError
from ..identity.binding import Consent
from ..identity.consent import ConsentRequest, answer
from ..identity.errors import BindingRefusedError, RefusalReason
from ..identity.licence_policy import VEHICLE_CLASSES
from ..identity.pin_entry import FixedPinEntry, PinEntry, TerminalPinEntry
from ..identity.recipients import check_known
from ..identity.session import LoginConfig, SessionManager
from ..identity.trust import TrustStore
from .card_person import add_subparsers as add_person_subparsers
from .card_profile import add_subparsers as add_profile_subparsers

log = logging.getLogger(__name__)

EXIT_REFUSED = 1  # login: no card, or the card was refused (the reason is printed)
EXIT_NO_CARD = 1  # status: the reader is empty
_ISSUER_CERT, _ISSUER_KEY = "msp-test-ca.pem", "msp-test-ca.key"


def add_subparser(subparsers: Any) -> None:
    """Register ``card`` and its four subcommands."""
    parser = subparsers.add_parser("card", help="driver card: virtual card, status, login",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="card_command", required=True, metavar="CARD_COMMAND")

    serve = sub.add_parser("serve-virtual", help="serve a virtual card image to pcscd via vpcd")
    serve.add_argument("image", type=Path, help="card image (from make-test-card)")
    serve.add_argument("--host", default="127.0.0.1", help="vpcd host (default %(default)s)")
    serve.add_argument("--port", type=int, default=VPCD_DEFAULT_PORT,
                       help="vpcd port of the reader slot (default %(default)s)")
    serve.set_defaults(func=_do_serve_virtual)

    make = sub.add_parser("make-test-card", help="issue a test card image from a test CA")
    make.add_argument("out", type=Path, help="card image to write (mode 0600)")
    make.add_argument("--name", default="MSP test card",
                      help="label in the certificate subject (no personal data)")
    make.add_argument("--pin", default="1234", help="4-digit JPKI PIN (default %(default)s)")
    make.add_argument("--licence-pin", help="4-digit licence PIN (default: --pin)")
    make.add_argument("--licence-expiry", type=date.fromisoformat, default=date(2030, 3, 31),
                      help="licence expiry YYYY-MM-DD (default %(default)s)")
    make.add_argument("--categories", default="普通",
                      help="comma-separated licence categories (default %(default)s)")
    make.add_argument("--no-licence", action="store_true", help="a card without a licence")
    make.add_argument("--issuer", type=Path,
                      help=f"directory of the test CA ({_ISSUER_CERT}, {_ISSUER_KEY}); "
                           "created when missing; default: the image's directory")
    make.set_defaults(func=_do_make_test_card)

    for name, func, text in (("status", _do_status,
                              "show the card in the reader (exit 1: no card)"),
                             ("login", _do_login,
                              "bind the card holder to this vehicle (exit 1: refused)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--reader", default=os.environ.get("MSP_CARD_READER"),
                         help="reader name or prefix (env MSP_CARD_READER; default: first)")
        cmd.add_argument("--transport", default="pcsc", help="card transport (default pcsc)")
        cmd.add_argument("--pin", help="PIN for both the licence and JPKI (default: prompt)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        cmd.add_argument("--wait", type=float, default=0.0,
                         help="seconds to wait for a card (default %(default)s)")
        cmd.set_defaults(func=func)
        if name == "login":
            _add_login_options(cmd)
    add_person_subparsers(sub)
    add_profile_subparsers(sub)


def _add_login_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--vin", default=os.environ.get("MSP_VIN", "MSPDEMO0000000001"),
                     help="vehicle VIN (env MSP_VIN)")
    cmd.add_argument("--device", default=os.environ.get("MSP_DEVICE", "gw-0001"),
                     help="gateway device id (env MSP_DEVICE)")
    cmd.add_argument("--vehicle-class", default="car", choices=sorted(VEHICLE_CLASSES))
    anchors = [Path(p) for p in os.environ.get("MSP_TRUST_ANCHORS", "").split(":") if p]
    cmd.add_argument("--trust-anchor", type=Path, action="append", default=None,
                     help="trusted root CA file, repeatable (env MSP_TRUST_ANCHORS, ':'-separated)")
    cmd.add_argument("--crl", type=Path, action="append", default=[], help="CRL file, repeatable")
    cmd.add_argument("--consent-request", type=Path,
                     default=os.environ.get("MSP_CONSENT_REQUEST") or None,
                     help="TOML file with the operator's [card.consent] request, e.g. "
                          "/etc/msp/agent.toml (env MSP_CONSENT_REQUEST); none: no "
                          "consent is asked")
    cmd.add_argument("--consent", metavar="CATEGORIES",
                     help="the driver's answer: the requested categories accepted, "
                          "comma-separated (driving,maintenance,score,location), or none; "
                          "default: ask at the terminal")
    cmd.add_argument("--recipients", type=Path, default=None,
                     help="the registry's recipients list: the request's recipient must be "
                          "on it (default: $MSP_RECIPIENTS or /etc/msp/recipients.json, if "
                          "present)")
    cmd.set_defaults(env_anchors=anchors)


def _do_serve_virtual(args: argparse.Namespace) -> int:
    card = VirtualCard(load_image(args.image))
    vpcd = VpcdCard(card, args.host, args.port)
    stop = threading.Event()
    print(f"serving {args.image} to vpcd at {args.host}:{args.port}; Ctrl-C to stop",
          file=sys.stderr)
    try:
        while not stop.is_set():
            vpcd.insert(timeout_s=3600)
            while vpcd.inserted:
                stop.wait(0.5)
            log.warning("vpcd dropped the card; reconnecting")
            stop.wait(1)
    finally:
        vpcd.remove()
    return 0


def _do_make_test_card(args: argparse.Namespace) -> int:
    issuer_dir: Path = args.issuer or args.out.parent
    cert_path, key_path = issuer_dir / _ISSUER_CERT, issuer_dir / _ISSUER_KEY
    categories = tuple(c.strip() for c in args.categories.split(",") if c.strip())
    licence = None if args.no_licence else LicenceData(args.licence_expiry, categories)
    try:
        if cert_path.exists() and key_path.exists():
            issuer = TestIssuer.load(cert_path, key_path)
        else:  # a new test CA, in a directory made for it if need be
            issuer_dir.mkdir(parents=True, exist_ok=True)
            issuer = TestIssuer.create()
            issuer.save(cert_path, key_path)
        image = make_test_card(issuer, label=args.name, pin=args.pin, licence=licence,
                               licence_pin=args.licence_pin)
        save_image(image, args.out)
    except OSError as exc:
        raise ConfigError(f"{exc.filename or issuer_dir}: {exc.strerror or exc}") from None
    print(f"wrote {args.out}; trust anchor (test CA, not J-LIS): {cert_path}")
    return 0


def _wait_for_card(transport: CardTransport, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while not transport.card_present():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _do_status(args: argparse.Namespace) -> int:
    transport = open_transport(args.transport, args.reader)
    report: dict[str, Any] = {"reader": transport.name, "card_present": False}
    if _wait_for_card(transport, args.wait):
        transport.connect()
        try:
            report = {"reader": transport.name, "card_present": True,
                      **_status(ApduChannel(transport), args.pin)}
        finally:
            transport.disconnect()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:22} {value}")
    return 0 if report["card_present"] else EXIT_NO_CARD


def _status(channel: ApduChannel, pin: str | None) -> dict[str, Any]:
    jpki = JpkiClient(channel)
    cert = x509.load_der_x509_certificate(jpki.auth_certificate())
    report: dict[str, Any] = {
        "certificate_subject": cert.subject.rfc4514_string(),
        "certificate_issuer": cert.issuer.rfc4514_string(),
        "certificate_not_before": cert.not_valid_before_utc.isoformat(),
        "certificate_not_after": cert.not_valid_after_utc.isoformat(),
        "jpki_pin_tries_left": jpki.pin_tries_left(),
    }
    licence = LicenceClient(channel)
    try:
        report["licence_pin_tries_left"] = licence.pin_tries_left()
    except CardFileNotFoundError:
        report["licence"] = None
        return report
    if pin is not None:
        licence.verify_pin(pin)
        data = licence.read()
        report["licence_expiry"] = data.expiry.isoformat()
        report["licence_categories"] = list(data.categories)
    return report


def _consents(args: argparse.Namespace) -> tuple[Consent, ...]:
    """What the driver accepts of the operator's request, from --consent or the terminal."""
    if args.consent_request is None:
        if args.consent is not None:
            raise ConfigError("--consent answers a request: give --consent-request FILE")
        return ()
    request = ConsentRequest.load(Path(args.consent_request))
    check_known(request.recipient, args.recipients, categories=request.categories)
    if args.consent is not None:
        accepted = answer(args.consent)
    elif sys.stdin.isatty():
        accepted = request.ask(_confirm)
    else:
        raise ConfigError(f"{request.recipient} asks for consent: give --consent CATEGORIES "
                          "(or none), or log in at a terminal")
    return request.accept(accepted, datetime.now(UTC))


def _confirm(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _do_login(args: argparse.Namespace) -> int:
    anchors = args.trust_anchor if args.trust_anchor is not None else args.env_anchors
    if not anchors:
        raise ConfigError("login needs at least one --trust-anchor (or MSP_TRUST_ANCHORS)")
    config = LoginConfig(vin=args.vin, device=args.device, vehicle_class=args.vehicle_class,
                         trust=TrustStore.load(anchors, args.crl),
                         consents=_consents(args))
    pin_entry: PinEntry = FixedPinEntry(args.pin) if args.pin is not None else TerminalPinEntry()
    manager = SessionManager(config, pin_entry)
    transport = open_transport(args.transport, args.reader)
    try:
        if not _wait_for_card(transport, args.wait):
            raise BindingRefusedError(RefusalReason.CARD_REMOVED,
                                      f"no card in reader {transport.name!r}")  # fmt: skip
        session = manager.login(transport)
    except BindingRefusedError as exc:
        tries = "" if exc.tries_left is None else f" ({exc.tries_left} tries left)"
        print(f"msp-agent: login refused [{exc.reason.value}]: {exc}{tries}", file=sys.stderr)
        if args.json:
            print(json.dumps({"refused": exc.reason.value, "message": str(exc),
                              "tries_left": exc.tries_left}, ensure_ascii=False))
        return EXIT_REFUSED
    finally:
        transport.disconnect()
    if args.json:
        print(json.dumps(session.start.to_json(), ensure_ascii=False, indent=2))
    else:
        print(f"driver session {session.id} started on {args.vin}")
    return 0

