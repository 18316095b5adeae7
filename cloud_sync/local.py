"""A whole registry side on one machine, for demos and tests: mosquitto on the configuration
``msp-registry mosquitto-config`` writes (mTLS, ACL), or, where mosquitto is not installed,
the embedded amqtt broker (plain MQTT 3.1.1 on loopback); and ``msp-registry serve`` as a
child process.

Gateways join with :meth:`LocalDeployment.enroll` and send with the command line that
:meth:`LocalDeployment.uplink_command` returns (``msp-agent uplink``), so the edge and the
cloud meet only over MQTT, as in the field::

    with LocalDeployment(Path("demo"), anchors=Path("anchors")) as site:
        cert = site.enroll("gw-0001", csr_path, vin="JT123456789", fleet="acme")
        site.drain("gw-0001", outbox, key, "JT123456789")   # msp-agent uplink until empty
"""

from __future__ import annotations

import getpass
import logging
import signal
import subprocess
import sys
from pathlib import Path

from .broker_process import MosquittoProcess, free_port
from .config import RegistryConfig
from .embedded_broker import EmbeddedBroker
from .errors import BrokerError, EnrolmentError
from .fleets import FleetCredentials, add_fleet, broker_users
from .mosquitto import BrokerFiles, BrokerLayout, write_config
from .pki import DeviceCa, cert_pem
from .recipients.directory import RecipientCredentials, add_recipient, broker_passwords
from .registry import enroll_device, revoked_serials, utc_now
from .store.open import open_store

log = logging.getLogger(__name__)


class LocalDeployment:
    """Broker and registry under ``root`` (``registry.db``, ``ca/``, ``broker/``, ``devices/``),
    on free loopback ports. Card certificates are trusted from ``anchors``."""

    def __init__(self, root: Path, anchors: Path, broker: str = "auto") -> None:
        if broker == "auto":
            broker = "mosquitto" if MosquittoProcess.available() else "embedded"
        if broker not in ("mosquitto", "embedded"):
            raise BrokerError(f"broker {broker!r}: expected auto, mosquitto or embedded")
        self.embedded = EmbeddedBroker() if broker == "embedded" else None
        self.root = root
        self.anchors = anchors
        self.device_port = free_port()
        self.registry_port = free_port()
        self.fleet_port = free_port()
        self.config = RegistryConfig(db=root / "registry.db", ca_dir=root / "ca", anchors=anchors)
        self.files: BrokerFiles | None = None
        self.broker: MosquittoProcess | None = None
        self.registry_proc: subprocess.Popen[bytes] | None = None

    @property
    def brokerdir(self) -> Path:
        """Where the mosquitto configuration, certificates and the registry password are."""
        return self.root / "broker"

    @property
    def ports(self) -> tuple[int, int, int]:
        """The broker's listeners: gateways and fleets (mTLS), registry, fleets (password)."""
        return (self.device_port, self.registry_port, self.fleet_port)

    def configure(self) -> BrokerFiles:
        """Write the broker configuration (mosquitto runs as the current user), with the
        fleets and fleet passwords the registry knows so far."""
        layout = BrokerLayout(
            device_port=self.device_port, device_bind="127.0.0.1",
            registry_port=self.registry_port, fleet_port=self.fleet_port,
            run_as=getpass.getuser(),
        )  # fmt: skip
        self.root.mkdir(parents=True, exist_ok=True)
        store = open_store(self.config.db, migrate=True)
        try:
            fleets, passwords = broker_users(store)
            revoked = revoked_serials(store)
            recipients = [(r.role, r.id) for r in store.recipients()]
            recipient_passwords = broker_passwords(store)
        finally:
            store.close()
        ca = DeviceCa.open(self.config.ca_path)
        self.files = write_config(self.brokerdir, ca, layout, fleets, passwords,
                                  revoked=revoked, recipients=recipients,
                                  recipient_passwords=recipient_passwords)  # fmt: skip
        if self.broker is None:
            self.broker = MosquittoProcess(self.files.config, self.ports)
        return self.files

    @property
    def fleetdir(self) -> Path:
        """Where :meth:`add_fleet` puts fleet operators' credentials."""
        return self.root / "fleets"

    def add_fleet(self, fleet: str, *, password: bool = False) -> FleetCredentials:
        """Register a fleet operator (``msp-registry fleet add``), credentials in
        :attr:`fleetdir`; a running mosquitto re-reads its ACL and passwords at once."""
        store = open_store(self.config.db, migrate=True)
        try:
            creds = add_fleet(store, DeviceCa.open(self.config.ca_path), fleet, self.fleetdir,
                              password=password, now=utc_now())  # fmt: skip
        finally:
            store.close()
        if self.embedded is None and self.files is not None:
            self.configure()
            assert self.broker is not None
            self.broker.reload()
        return creds

    def add_recipient(self, name: str, role: str) -> RecipientCredentials:
        """Register a guardian, insurer or responder (``msp-registry recipient add``),
        credentials in :attr:`fleetdir`; a running mosquitto re-reads its ACL at once."""
        store = open_store(self.config.db, migrate=True)
        try:
            creds = add_recipient(store, DeviceCa.open(self.config.ca_path), name, role,
                                  self.fleetdir, password=False, now=utc_now())  # fmt: skip
        finally:
            store.close()
        if self.embedded is None and self.files is not None:
            self.configure()
            assert self.broker is not None
            self.broker.reload()
        return creds

    def recipient_watch_command(self, role: str, name: str, *extra: str,
                                timeout: float = 30.0) -> list[str]:  # fmt: skip
        """The ``msp-registry ROLE watch NAME`` command: the recipient's own receiver."""
        registry = Path(sys.executable).with_name("msp-registry")
        base = [str(registry), role, "watch", name, "--timeout", str(timeout), *extra]
        if self.embedded is not None:
            return [*base, "--broker", f"mqtt://127.0.0.1:{self.embedded.port}", "--mqtt311"]
        if self.files is None:
            raise BrokerError("configure() the deployment first")
        user = f"{role}.{name}"
        return [*base, "--tls-ca", str(self.files.ca_cert),
                "--tls-cert", str(self.fleetdir / f"{user}.pem"),
                "--tls-key", str(self.fleetdir / f"{user}.key"),
                "--broker", f"mqtts://127.0.0.1:{self.device_port}"]  # fmt: skip

    def watch_command(self, *fleets: str, timeout: float = 30.0) -> list[str]:
        """The ``msp-registry fleet watch`` command that prints ``fleets``' feeds side by side,
        each as its operator receives it (verified against the published device keys)."""
        registry = Path(sys.executable).with_name("msp-registry")
        base = [str(registry), "fleet", "watch", *fleets, "--timeout", str(timeout)]
        if self.embedded is not None:
            return [*base, "--creds", str(self.fleetdir),
                    "--broker", f"mqtt://127.0.0.1:{self.embedded.port}", "--mqtt311"]
        if self.files is None:
            raise BrokerError("configure() the deployment first")
        return [*base, "--creds", str(self.fleetdir), "--tls-ca", str(self.files.ca_cert),
                "--broker", f"mqtts://127.0.0.1:{self.device_port}"]  # fmt: skip

    def enroll(self, device: str, csr: Path, *, vin: str, fleet: str) -> Path:
        """Enrol a gateway from its CSR file; returns the path of its certificate."""
        try:
            csr_pem = csr.read_bytes()
        except OSError as exc:
            raise EnrolmentError(f"{csr}: cannot read CSR: {exc}") from None
        store = open_store(self.config.db, migrate=True)
        try:
            cert = enroll_device(store, DeviceCa.open(self.config.ca_path), device, csr_pem,
                                 vin=vin, fleet=fleet)  # fmt: skip
        finally:
            store.close()
        path = self.root / "devices" / f"{device}.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cert_pem(cert))
        return path

    def start(self) -> None:
        """Configure (if not yet), start the broker, then the registry."""
        if self.embedded is not None:
            self.embedded.start()
        else:
            if self.broker is None:
                self.configure()
            assert self.broker is not None
            self.broker.start()
        self.start_registry()

    def _registry_broker_args(self) -> list[str]:
        if self.embedded is not None:
            return ["--broker", f"mqtt://127.0.0.1:{self.embedded.port}", "--mqtt311",
                    "--username", ""]  # fmt: skip
        if self.files is None:
            raise BrokerError("configure() the deployment before starting the registry")
        return ["--broker", f"mqtt://127.0.0.1:{self.registry_port}",
                "--password-file", str(self.files.registry_secret)]  # fmt: skip

    def start_registry(self, *extra: str) -> None:
        """Start ``msp-registry serve`` as a child process (log in ``registry.log``)."""
        broker_args = self._registry_broker_args()
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "registry.log").open("ab") as out:
            self.registry_proc = subprocess.Popen(
                [sys.executable, "-m", "cloud_sync.cli", "-v", "serve", *broker_args,
                 "--anchors", str(self.anchors), "--db", str(self.config.db), *extra],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill_registry(self) -> None:
        """SIGKILL the registry (a crash: nothing flushed, nothing said to the broker)."""
        proc, self.registry_proc = self.registry_proc, None
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        """Stop the registry (SIGTERM: it finishes its batch) and the broker."""
        proc, self.registry_proc = self.registry_proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.broker is not None:
            self.broker.stop()
        if self.embedded is not None:
            self.embedded.stop()

    def uplink_command(self, device: str, outbox: Path, key: Path, vin: str) -> list[str]:
        """The ``msp-agent uplink`` command that drains ``outbox`` to this deployment and exits
        0 once it is empty (mTLS with the certificate :meth:`enroll` wrote; plain MQTT 3.1.1 on
        the embedded broker)."""
        agent = Path(sys.executable).with_name("msp-agent")
        base = [str(agent), "uplink", "--outbox", str(outbox), "--key", str(key),
                "--device", device, "--vin", vin, "--until-empty"]  # fmt: skip
        if self.embedded is not None:
            return [*base, "--broker", f"mqtt://127.0.0.1:{self.embedded.port}", "--mqtt311"]
        if self.files is None:
            raise BrokerError("configure() the deployment first")
        return [*base, "--broker", f"mqtts://127.0.0.1:{self.device_port}",
                "--ca", str(self.files.ca_cert),
                "--cert", str(self.root / "devices" / f"{device}.pem")]  # fmt: skip

    def drain(self, device: str, outbox: Path, key: Path, vin: str, timeout: float = 120) -> None:
        """Run :meth:`uplink_command` until the outbox is empty; raises ``BrokerError`` if it
        is not empty within ``timeout`` seconds (see ``registry.log`` and the agent's output)."""
        cmd = [*self.uplink_command(device, outbox, key, vin), "--timeout", str(timeout)]
        try:
            done = subprocess.run(cmd, check=False, timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            raise BrokerError(f"{device}: msp-agent uplink hung") from None
        if done.returncode != 0:
            raise BrokerError(f"{device}: msp-agent uplink exited {done.returncode}")

    def __enter__(self) -> LocalDeployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
