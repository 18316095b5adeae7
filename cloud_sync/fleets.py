"""Fleet operators: their credentials, the device keys published to them, their view of scores.

A fleet operator reads only ``msp/v1/fleet/{fleet}/#`` (the generated ACL), logging in as
``fleet.{fleet}`` with a client certificate from the device CA (mTLS listener) or with a
user name and password (TLS listener, for clients that cannot do certificates). To check the
gateways' signatures itself it gets every device key of its vehicles, retained on
``msp/v1/fleet/{fleet}/keys/{device}``: the public key and algorithm only, no certificate.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from msp_protocol import consent as cats
from msp_protocol.errors import ProtocolError
from msp_protocol.topics import check_id, fleet_key_topic

from .consents import ConsentView
from .errors import RegistryError
from .mosquitto import password_hash
from .pki import FLEET_PREFIX, DeviceCa, cert_pem, key_pem, write_private
from .republish import fleet_pseudonym, score_of
from .store import Batch, Device, Fleet, Publication, Store

log = logging.getLogger(__name__)


class FleetError(RegistryError):
    """A fleet id, pseudonym or score request the registry cannot serve (names which)."""


@dataclass(frozen=True, slots=True)
class FleetCredentials:
    """What :func:`add_fleet` wrote for the operator: certificate and key (0600), the CA that
    the broker's certificate chains to, and the password file (0600) if one was asked for."""

    user: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    password_file: Path | None


@dataclass(frozen=True, slots=True)
class FleetScore:
    """A person's portable score as one fleet may see it."""

    fleet: str
    person: str
    score: float | None
    until: str


def fleet_user(fleet: str) -> str:
    """The broker user name (and certificate CN) of a fleet operator."""
    return FLEET_PREFIX + fleet


def key_publication(fleet: str, device: Device) -> Publication:
    """The retained message that tells ``fleet`` how to verify ``device``'s records."""
    value = {"device": device.id, "vin": device.vin, "alg": device.alg,
             "public_key_pem": device.public_key_pem, "revoked_at": device.revoked_at}
    return Publication(fleet_key_topic(fleet, device.id),
                       json.dumps(value, sort_keys=True).encode(), retain=True)  # fmt: skip


def publish_keys(store: Store, fleet: str | None = None) -> int:
    """Commit the key messages of every device (of ``fleet``, or of all fleets) for the
    registry to publish; returns how many."""
    pubs = [key_publication(d.fleet, d) for d in store.devices()
            if fleet is None or d.fleet == fleet]  # fmt: skip
    store.commit(Batch(publications=pubs))
    return len(pubs)


def add_fleet(store: Store, ca: DeviceCa, fleet: str, out: Path, *, password: bool,
              now: str) -> FleetCredentials:  # fmt: skip
    """Register ``fleet``, issue its operator's client certificate into ``out`` (and a
    password, with ``password``), and queue its vehicles' device keys for publication.
    Adding a fleet again issues new credentials (a new password replaces the old one).
    Re-run ``msp-registry mosquitto-config`` afterwards: the broker learns users from it."""
    try:
        check_id(fleet, "fleet")
    except ProtocolError as exc:
        raise FleetError(str(exc)) from None
    user = fleet_user(fleet)
    issued = ca.issue_client(user)
    cert_file, key_file = out / f"{user}.pem", out / f"{user}.key"
    out.mkdir(parents=True, exist_ok=True)
    cert_file.write_bytes(cert_pem(issued.cert))
    write_private(key_file, key_pem(issued.key))
    ca_file = out / "device-ca.pem"
    ca_file.write_bytes(cert_pem(ca.cert))
    password_file, hashed = None, None
    if password:
        secret = secrets.token_urlsafe(24)
        password_file = out / f"{user}.secret"
        write_private(password_file, secret.encode() + b"\n")
        hashed = password_hash(secret)
    store.add_fleet(Fleet(fleet, now, hashed))
    keys = publish_keys(store, fleet)
    log.info("fleet %s: credentials in %s, %d device keys queued", fleet, out, keys)
    return FleetCredentials(user, ca_file, cert_file, key_file, password_file)


def broker_users(store: Store) -> tuple[set[str], dict[str, str]]:
    """The fleets the broker's ACL must know (of enrolled devices and registered operators)
    and the password hashes of those that log in with a password."""
    fleets = {device.fleet for device in store.devices()}
    passwords: dict[str, str] = {}
    for fleet in store.fleets():
        fleets.add(fleet.id)
        if fleet.password_hash:
            passwords[fleet.id] = fleet.password_hash
    return fleets, passwords


def person_of(store: Store, fleet: str, pseudonym: str) -> str:
    """The internal person id behind ``fleet``'s pseudonym; raises ``FleetError``."""
    secret = store.pseudonym_secret()
    for person in store.persons():
        if secrets.compare_digest(fleet_pseudonym(secret, fleet, person.id).encode(),
                                  pseudonym.encode("utf-8", "surrogatepass")):
            return person.id
    raise FleetError(f"fleet {fleet!r} knows no person {pseudonym!r}")


def fleet_score(store: Store, fleet: str, pseudonym: str, at: datetime) -> FleetScore:
    """The portable score of the person ``fleet`` knows as ``pseudonym``, if the person has
    consented ``score`` to ``fleet`` and the consent is valid at ``at``; raises
    ``FleetError`` otherwise (never says more about the person than the refusal)."""
    person = person_of(store, fleet, pseudonym)
    grant = ConsentView.of(store, person).allowing(fleet, cats.SCORE, at)  # revocations too
    if grant is None:
        raise FleetError(f"{pseudonym} has not consented to show fleet {fleet!r} a score")
    return FleetScore(fleet, pseudonym, score_of(store, person, at), grant.until_text)
