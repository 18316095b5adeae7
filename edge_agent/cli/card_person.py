"""``msp-agent card consent|my-data|succeed``: the person's own acts, signed with their card.

* ``consent grant RECIPIENT --categories driving,score --days 90``, ``consent revoke
  RECIPIENT [--categories ...]``: the card (and its PIN) signs the statement, which goes
  into the gateway's outbox as a ``consent`` record; the agent's uplink sends it ahead of
  its backlog and the registry applies it as soon as its signature verifies. A recipient
  the registry does not know (``--recipients``, written by ``msp-registry recipients``) is
  refused here, with the list of the known ones.
* ``consent list`` and ``my-data [--json] [--export FILE] [--erase]``: a card-signed
  ``request`` with a fresh X25519 key; the answer (consents, exchange log, scores; with
  ``--export`` everything) comes sealed to that key on the device's reply topic.
* ``succeed --new-reader R``: the old card (still valid) signs a statement naming the new
  card's certificate, which the new card signs too; the registry moves the person to the new
  card and refuses the old one from then on.

Exit codes: 0 done, 1 the card was refused (reason printed), 2 bad input (``AgentError``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    from msp_protocol.bodies import Body

    from ..identity.card_acts import CardSigner
    from ..uplink.mqtt import UplinkConfig

EXIT_REFUSED = 1


def add_subparsers(sub: Any) -> None:
    """Register ``consent``, ``my-data`` and ``succeed`` under ``msp-agent card``."""
    consent = sub.add_parser("consent", help="grant, revoke or list consents with the card")
    csub = consent.add_subparsers(dest="consent_command", required=True, metavar="ACTION")
    grant = csub.add_parser("grant", help="let a recipient have some categories of your data")
    grant.add_argument("recipient", help="a registered recipient (see --recipients)")
    grant.add_argument("--categories", required=True,
                       help="comma-separated: driving,maintenance,score,location,alerts,"
                            "emergency (what the recipient's role may be given)")
    grant.add_argument("--days", type=float, default=90.0, help="how long (default %(default)s)")
    revoke = csub.add_parser("revoke", help="withdraw consents of a recipient from now on")
    revoke.add_argument("recipient", help="the recipient")
    revoke.add_argument("--categories", default="",
                        help="comma-separated categories to withdraw (default: all)")
    listing = csub.add_parser("list", help="your consents, as the registry holds them")
    for cmd in (grant, revoke, listing):
        _common(cmd)
    grant.set_defaults(func=_do_grant)
    revoke.set_defaults(func=_do_revoke)
    listing.set_defaults(func=_do_list)
    _reply_options(listing)

    mine = sub.add_parser("my-data", help="what the registry holds of you and who got it")
    _common(mine)
    _reply_options(mine)
    mine.add_argument("--export", type=Path, metavar="FILE",
                      help="write all your trips, events, scores and consents to FILE (JSON)")
    mine.add_argument("--erase", action="store_true",
                      help="ask the registry to erase your data (the retention rule keeps "
                           "consent and exchange records)")
    mine.set_defaults(func=_do_my_data)

    succeed = sub.add_parser("succeed", help="move yourself to a new card (old card still valid)")
    _common(succeed)
    _reply_options(succeed)
    succeed.add_argument("--new-reader", required=True, help="the reader holding the new card")
    succeed.add_argument("--new-pin", help="the new card's JPKI PIN (default: --pin or prompt)")
    succeed.set_defaults(func=_do_succeed)


def _common(cmd: argparse.ArgumentParser) -> None:
    env = os.environ.get
    cmd.add_argument("--reader", default=env("MSP_CARD_READER"),
                     help="reader name or prefix (env MSP_CARD_READER; default: first)")
    cmd.add_argument("--transport", default="pcsc", help="card transport (default pcsc)")
    cmd.add_argument("--pin", help="the card's JPKI PIN (default: prompt)")
    cmd.add_argument("--wait", type=float, default=0.0, help="seconds to wait for a card")
    anchors = [Path(p) for p in env("MSP_TRUST_ANCHORS", "").split(":") if p]
    cmd.add_argument("--trust-anchor", type=Path, action="append", default=None,
                     help="trusted root CA file, repeatable (env MSP_TRUST_ANCHORS)")
    cmd.add_argument("--crl", type=Path, action="append", default=[], help="CRL file, repeatable")
    cmd.add_argument("--outbox", type=Path, default=env("MSP_OUTBOX", "/var/lib/msp/outbox.db"),
                     help="the agent's outbox (env MSP_OUTBOX; default %(default)s)")
    cmd.add_argument("--key", type=Path, default=env("MSP_KEY", "/etc/msp/device.key"),
                     help="device key (env MSP_KEY; default %(default)s)")
    cmd.add_argument("--device", default=env("MSP_DEVICE", "gw-0001"),
                     help="device id (env MSP_DEVICE)")
    cmd.add_argument("--vin", default=env("MSP_VIN", "MSPDEMO0000000001"),
                     help="vehicle VIN (env MSP_VIN)")
    cmd.add_argument("--recipients", type=Path,
                     default=env("MSP_RECIPIENTS", "/etc/msp/recipients.json"),
                     help="the registry's recipients list (env MSP_RECIPIENTS; from "
                          "msp-registry recipients --json --out FILE)")
    cmd.add_argument("--json", action="store_true", help="machine-readable output")
    cmd.set_defaults(env_anchors=anchors)


def _reply_options(cmd: argparse.ArgumentParser) -> None:
    env = os.environ.get
    cmd.add_argument("--broker", default=env("MSP_BROKER", "mqtts://127.0.0.1:8883"),
                     help="mqtts://HOST:PORT where the answer comes (env MSP_BROKER)")
    cmd.add_argument("--ca", type=Path, default=env("MSP_BROKER_CA"),
                     help="CA of the broker's certificate (env MSP_BROKER_CA)")
    cmd.add_argument("--cert", type=Path, default=env("MSP_BROKER_CERT"),
                     help="device certificate (env MSP_BROKER_CERT)")
    cmd.add_argument("--mqtt311", action="store_true", help="speak MQTT 3.1.1 instead of 5")
    cmd.add_argument("--timeout", type=float, default=60.0,
                     help="seconds to wait for the answer (default %(default)s)")


# -- card and outbox ------------------------------------------------------------------------


def _signer(args: argparse.Namespace, pin: str | None = None) -> CardSigner:
    from ..identity.card_acts import CardSigner  # noqa: PLC0415 - X.509 and pyscard: on use
    from ..identity.pin_entry import FixedPinEntry, PinEntry, TerminalPinEntry  # noqa: PLC0415
    from ..identity.trust import TrustStore  # noqa: PLC0415

    anchors = args.trust_anchor if args.trust_anchor is not None else args.env_anchors
    if not anchors:
        raise ConfigError("the card's certificate is checked: give --trust-anchor "
                          "(or MSP_TRUST_ANCHORS)")  # fmt: skip
    given = pin if pin is not None else args.pin
    entry: PinEntry = FixedPinEntry(given) if given is not None else TerminalPinEntry()
    return CardSigner(TrustStore.load(anchors, args.crl), entry)


def _transport(args: argparse.Namespace, reader: str | None) -> Any:
    from ..card.transport import open_transport  # noqa: PLC0415
    from ..identity.errors import BindingRefusedError, RefusalReason  # noqa: PLC0415

    transport = open_transport(args.transport, reader)
    deadline = time.monotonic() + args.wait
    while not transport.card_present():
        if time.monotonic() >= deadline:
            raise BindingRefusedError(RefusalReason.CARD_REMOVED,
                                      f"no card in reader {transport.name!r}")  # fmt: skip
        time.sleep(0.2)
    return transport


def _append(args: argparse.Namespace, body: Body) -> int:
    """Append ``body`` to the agent's outbox (the agent's uplink sends it ahead of the
    backlog); returns its seq."""
    from ..keys import load_signer  # noqa: PLC0415
    from ..outbox import Outbox  # noqa: PLC0415

    outbox = Outbox.open(args.outbox, load_signer(args.key, args.device), args.vin)
    try:
        return outbox.append(body, time.time()).seq
    finally:
        outbox.close()


def _refused(args: argparse.Namespace, exc: Any) -> int:
    tries = "" if exc.tries_left is None else f" ({exc.tries_left} tries left)"
    print(f"msp-agent: card refused [{exc.reason.value}]: {exc}{tries}", file=sys.stderr)
    if args.json:
        print(json.dumps({"refused": exc.reason.value, "message": str(exc)}))
    return EXIT_REFUSED


# -- consent grant / revoke -----------------------------------------------------------------


def _do_grant(args: argparse.Namespace) -> int:
    from ..identity.card_acts import grant_statement  # noqa: PLC0415
    from ..identity.recipients import KnownRecipients  # noqa: PLC0415

    KnownRecipients.load(args.recipients).check(args.recipient, args.categories.split(","))
    statement = grant_statement(args.recipient, args.categories.split(","), args.days,
                                device=args.device, vin=args.vin, now=datetime.now(UTC))
    return _sign_consent(args, statement)


def _do_revoke(args: argparse.Namespace) -> int:
    from ..identity.card_acts import revoke_statement  # noqa: PLC0415
    from ..identity.recipients import KnownRecipients  # noqa: PLC0415

    KnownRecipients.load(args.recipients).check(args.recipient)
    wanted = [c for c in args.categories.split(",") if c.strip()]
    statement = revoke_statement(args.recipient, wanted, device=args.device, vin=args.vin,
                                 now=datetime.now(UTC))  # fmt: skip
    return _sign_consent(args, statement)


def _sign_consent(args: argparse.Namespace, statement: Any) -> int:
    from msp_protocol.consent import statement_bytes  # noqa: PLC0415

    from .. import later_consents  # noqa: PLC0415
    from ..identity.card_acts import consent_body  # noqa: PLC0415
    from ..identity.errors import BindingRefusedError  # noqa: PLC0415

    try:
        signed = _signer(args).sign(_transport(args, args.reader), statement_bytes(statement))
    except BindingRefusedError as exc:
        return _refused(args, exc)
    seq = _append(args, consent_body(statement, signed))
    # the running agent honours it too, for what only the gateway decides (public statistics)
    later_consents.add(later_consents.beside(args.outbox), signed.certificate_sha256, statement)
    what = ",".join(statement.categories) or "all categories"
    if args.json:
        print(json.dumps({"action": statement.action, "recipient": statement.recipient,
                          "categories": list(statement.categories), "until": statement.until,
                          "signed_at": statement.signed_at, "seq": seq}))  # fmt: skip
    elif statement.action == "grant":
        print(f"granted {what} to {statement.recipient} until {statement.until} "
              f"(consent record seq {seq}, sent ahead of the backlog)")
    else:
        print(f"revoked {what} of {statement.recipient} from {statement.signed_at} "
              f"(consent record seq {seq}, sent ahead of the backlog)")
    return 0


# -- requests: my-data, consent list, export, erase, succeed --------------------------------


def reply_config(args: argparse.Namespace) -> UplinkConfig:
    """Where the answer is read: the device's own credentials on the broker."""
    from ..uplink.mqtt import UplinkConfig  # noqa: PLC0415

    url = urlsplit(args.broker)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(f"--broker {args.broker!r}: expected mqtts://HOST:PORT")
    tls = url.scheme == "mqtts"
    if tls and not (args.ca and args.cert):
        raise ConfigError("--broker mqtts://... needs --ca and --cert (and the device --key)")
    return UplinkConfig(device=args.device, host=url.hostname,
                        port=url.port or (8883 if tls else 1883),
                        ca_file=args.ca if tls else None, cert_file=args.cert if tls else None,
                        key_file=args.key if tls else None,
                        mqtt5=not args.mqtt311)  # fmt: skip


def request(args: argparse.Namespace, action: str, successor: Any = None) -> dict[str, Any] | int:
    """Sign a request, queue it, and return the registry's opened answer (or an exit code)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: PLC0415

    from msp_protocol.consent import statement_bytes  # noqa: PLC0415
    from msp_protocol.sealed import open_reply  # noqa: PLC0415

    from ..identity.card_acts import request_body, request_statement  # noqa: PLC0415
    from ..identity.errors import BindingRefusedError  # noqa: PLC0415
    from ..uplink.replies import ReplyListener  # noqa: PLC0415

    private = x25519.X25519PrivateKey.generate()  # in memory only: the answer is for us
    public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    signer = _signer(args)
    try:
        new_cert = None
        if successor is not None:
            new_signer, new_transport = successor
            new_cert = new_signer.certificate(new_transport)
        statement = request_statement(action, device=args.device, vin=args.vin,
                                      now=datetime.now(UTC), reply_key=public,
                                      successor_certificate=new_cert)  # fmt: skip
        message = statement_bytes(statement)
        signed = signer.sign(_transport(args, args.reader), message)
        new_signed = None if successor is None else new_signer.sign(new_transport, message)
    except BindingRefusedError as exc:
        return _refused(args, exc)
    listener = ReplyListener(reply_config(args))
    listener.start(min(args.timeout, 30.0))
    try:
        _append(args, request_body(statement, signed, new_signed))
        parts = listener.wait(statement.nonce, args.timeout)
    finally:
        listener.stop()
    answer: dict[str, Any] = json.loads(open_reply(list(parts), private))
    if "refused" in answer:
        print(f"msp-agent: the registry refused the request [{answer['refused']}]: "
              f"{answer.get('message', '')}", file=sys.stderr)
        return EXIT_REFUSED
    return answer


def _do_list(args: argparse.Namespace) -> int:
    answer = request(args, "my_data")
    if isinstance(answer, int):
        return answer
    consents = answer.get("consents", {})
    if args.json:
        print(json.dumps(consents, indent=2, ensure_ascii=False))
        return 0
    for c in consents.get("at_login", []):
        print(f"login    {c['recipient']:16} {','.join(c['categories']):32} until {c['until']}")
    for c in consents.get("statements", []):
        what = ",".join(c["categories"]) or "all"
        when = f"until {c['until']}" if c["action"] == "grant" else f"from {c['signed_at']}"
        print(f"{c['action']:8} {c['recipient']:16} {what:32} {when}")
    return 0


def _do_my_data(args: argparse.Namespace) -> int:
    if args.erase and args.export:
        raise ConfigError("--erase and --export: one at a time (export first, then erase)")
    action = "erase" if args.erase else "export" if args.export else "my_data"
    answer = request(args, action)
    if isinstance(answer, int):
        return answer
    if args.export:
        args.export.write_text(json.dumps(answer, indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")  # fmt: skip
        os.chmod(args.export, 0o600)  # the person's data
        print(f"wrote your data to {args.export}")
        return 0
    if args.json or args.erase:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    for row in answer.get("exchanges", []):
        print(f"{row['sent_at'][:19]}  {row['recipient']:16} {row['kind']:14} "
              f"{row['record'] or '-':24} {row['status']:9} {row['consent']}")
    scores = answer.get("scores", {})
    print(f"score now: {scores.get('now')}")
    return 0


def _do_succeed(args: argparse.Namespace) -> int:
    new_signer = _signer(args, args.new_pin if args.new_pin is not None else args.pin)
    answer = request(args, "succeed", (new_signer, _transport(args, args.new_reader)))
    if isinstance(answer, int):
        return answer
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0 if answer.get("succeeded") else EXIT_REFUSED
