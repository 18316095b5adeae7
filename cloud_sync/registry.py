"""The registry's operations as functions: enrol a gateway, score a person, serve the broker.

The CLI subcommands and the demo call these; they raise ``RegistryError`` subclasses and
never exit the process.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .cards import TrustAnchors
from .config import RegistryConfig
from .consents import PersonActs
from .errors import BrokerError, EnrolmentError, RegistryError
from .fleets import key_publication
from .ingest import Ingestor
from .my_data import MyData
from .pki import DeviceCa, cert_pem, jws_alg, public_key_pem
from .recipients.responder import EmergencyDispatch
from .recipients.schedule import Timetable
from .recipients.signing import RegistrySigner
from .republish import Republisher, RoleFanout
from .store import Accepted, Batch, Device, Store
from .store.open import open_store
from .succession import CardSuccession
from .transport.base import Transport
from .transport.mqtt import BrokerConfig, MqttTransport
from .verify_pool import VerifyPool
from .worker import RegistryWorker

log = logging.getLogger(__name__)


def utc_now() -> str:
    """The current instant in the wire format of records."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def enroll_device(
    store: Store, ca: DeviceCa, device: str, csr_pem: bytes, *, vin: str, fleet: str
) -> x509.Certificate:
    """Issue ``device``'s certificate for the key in its CSR and register the device with
    that key as its record-signing key. Raises ``EnrolmentError``."""
    cert = ca.issue_device(device, csr_pem)
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise EnrolmentError(f"{device}: unsupported key {type(key).__name__}")
    row = Device(device, vin, fleet, public_key_pem(key), jws_alg(key),
                 cert_pem(cert).decode("ascii"), utc_now())  # fmt: skip
    store.enroll(row)
    store.commit(Batch(publications=[key_publication(fleet, row)]))  # for the fleet to verify
    log.info("enrolled %s (vehicle %s, fleet %s)", device, vin, fleet)
    return cert


def revoked_serials(store: Store) -> list[int]:
    """Serial numbers of the certificates of every revoked device (for the CA's CRL)."""
    return [x509.load_pem_x509_certificate(d.certificate_pem.encode("ascii")).serial_number
            for d in store.devices() if d.revoked]  # fmt: skip


def broker_config(config: RegistryConfig) -> BrokerConfig:
    """The broker connection of a registry configuration (reads the password file)."""
    password = None
    if config.password_file is not None:
        try:
            password = config.password_file.read_text().strip()
        except OSError as exc:
            raise RegistryError(f"{config.password_file}: cannot read password: {exc}") from None
    return BrokerConfig(
        url=config.broker, username=config.username or None, password=password,
        client_id=config.client_id, mqtt5=not config.mqtt311, shared=config.shared,
        ca_file=config.tls_ca, cert_file=config.tls_cert, key_file=config.tls_key,
    )  # fmt: skip


def transport_for(config: RegistryConfig, nats_dir: Path | None = None) -> Transport:
    """The broker transport: JetStream on a NATS cluster with ``nats_dir`` (nats-config's
    directory: URLs, password, certificates) or a ``nats://`` broker URL (a comma-separated
    list of the nodes); ``mqtt://``/``mqtts://`` (mosquitto or any MQTT broker) otherwise.
    Raises ``BrokerError`` for another scheme."""
    scheme = urlsplit(config.broker.split(",")[0].strip()).scheme
    if nats_dir is not None or scheme == "nats":
        from .transport.jetstream import (  # noqa: PLC0415 - the optional [nats] extra
            JetStreamConfig,
            JetStreamTransport,
            config_from_dir,
        )

        urls = [u.strip() for u in config.broker.split(",")] if scheme == "nats" else []
        if nats_dir is not None:
            return JetStreamTransport(config_from_dir(nats_dir, urls, config.client_id))
        password = broker_config(config).password
        return JetStreamTransport(JetStreamConfig(tuple(urls), user=config.username,
                                                  password=password,
                                                  client_id=config.client_id))  # fmt: skip
    if scheme in ("mqtt", "mqtts"):
        return MqttTransport(broker_config(config))
    raise BrokerError(f"broker URL {config.broker!r}: expected mqtt://, mqtts:// or nats://")


def _timetable(config: RegistryConfig, stop: threading.Event) -> None:
    """Guardians' daily digests and insurers' monthly summaries (``cloud_sync.recipients.
    schedule``), on a connection of their own."""
    try:
        store = open_store(config.db, secrets_dir=config.secrets_dir)
    except RegistryError as exc:
        log.error("no guardian/insurer timetable: %s", exc)
        return
    try:
        Timetable(store).run(stop)
    finally:
        store.close()


def serve(config: RegistryConfig, stop: threading.Event, nats_dir: Path | None = None) -> None:
    """Run one registry worker until ``stop`` is set: on the MQTT broker of ``config``, or on
    a NATS cluster (JetStream) with ``nats_dir`` or a ``nats://`` broker URL. Raises
    ``RegistryError`` (no trust anchors, unreadable files, a broker URL it cannot use) or
    ``StoreError`` (the database cannot be opened; once serving, a failing database is waited
    out)."""
    if config.anchors is None:
        raise RegistryError("no trust anchors for driver cards: give --anchors DIR")
    if config.verify_workers < 0:
        raise RegistryError(f"--verify-workers {config.verify_workers}: 0 or more")
    anchors = TrustAnchors.load(config.anchors)
    transport = transport_for(config, nats_dir)
    store = open_store(config.db, secrets_dir=config.secrets_dir)
    pool = None
    try:
        store.pseudonym_secret()  # fail now, naming the file, not at the first fleet copy
        if config.verify_workers:
            pool = VerifyPool(config.verify_workers)
        signer = RegistrySigner(store)  # made now if new: fail now, naming the file
        store.commit(Batch(publications=[signer.key_publication()]))  # retained, for everyone
        emergencies = EmergencyDispatch(store, anchors, signer)
        fanout = Republisher(store, RoleFanout(store, emergencies)).fanout
        answers = MyData(store, succeed=CardSuccession(store, anchors).apply)
        acts = PersonActs(store, anchors, answers.answer)

        def early(accepted: Accepted) -> None:  # the person's acts, then crashes and profiles
            acts.early(accepted)
            emergencies.early(accepted)

        ingestor = Ingestor(store, anchors, max_waiting=config.max_waiting, fanout=fanout,
                            pool=pool, on_early=early)  # fmt: skip
        timetable = threading.Thread(target=_timetable, args=(config, stop), daemon=True,
                                     name="care-timetable")  # fmt: skip
        timetable.start()
        RegistryWorker(ingestor, transport).run(stop)
    finally:
        if pool is not None:
            pool.close()
        store.close()
