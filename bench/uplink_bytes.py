"""Uplink bytes per driving hour, on the wire: ``msp-agent run`` replaying a simulated hour to
a real mosquitto (mTLS, the ACL ``msp-registry mosquitto-config`` writes) and a real registry,
through a loopback TCP relay that counts every byte both ways (TLS and MQTT included; TCP/IP
headers are not: they depend on the link, not on us).

    .venv/bin/python bench/uplink_bytes.py [--log drive.log] [--duration 3600] [--speed 40]

Two runs of the same drive, one with today's settings (``--set`` only: keepalive 30 s, one
record a message, a health record every 5 minutes, no MQTT 5 session) and one with the
defaults. What the figures are made of:

* **records, by kind**: the JWS bytes of every record the registry stored (the payload), from
  its database; a batch adds one LF per record.
* **MQTT/TLS framing**: the rest of the agent's connection after its TLS handshake: PUBLISH
  headers and topic, PUBACKs, the registry's acks and their PUBACKs, SUBSCRIBE, the TLS record
  overhead of each (22 bytes with TLS 1.3), DISCONNECT.
* **TLS handshake**: measured by a probe connection through the same relay with the device's
  certificate (a full handshake with both certificates and the session tickets), once per
  connection the agent made; and a second probe resuming the first one's session, which is
  what a reconnect of the same process costs (``tls_resume``).
* **keepalive**: the replay runs the hour ``--speed`` times faster, so the agent's own pings
  do not tell an hour's worth. It is computed: one PINGREQ and one PINGRESP every keepalive
  interval (an upper bound: paho pings only when nothing else went out within the interval),
  sized by a probe client through the relay with a 1 s keepalive (each is one 24-byte TLS
  record). Health records are scaled the same way: ``agent.health_interval_s``,
  ``agent.health_max_interval_s`` and ``uplink.linger_s`` are divided by ``--speed``.

Figures are scaled from the drive's own length to 3600 s.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud_sync.broker_process import free_port
from edge_agent.uplink.mqtt import TLS12_CIPHERS
from tests.sync_deploy import Deployment, GatewaySetup, wait_for
from tests.sync_kit import CardIssuer

REPO = Path(__file__).resolve().parent.parent
VIN = "JTDKB20U093456789"
DEVICE = "gw-bench"
#: TLS record types (RFC 8446 §5.1)
APPLICATION_DATA = 23


@dataclass
class Direction:
    """Bytes one way on one connection, and the TLS records they held (type, length)."""

    size: int = 0
    records: list[tuple[int, int]] = field(default_factory=list)
    _buffer: bytes = b""

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= 5:
            length = int.from_bytes(self._buffer[3:5], "big")
            if len(self._buffer) < 5 + length:
                break
            self.records.append((self._buffer[0], length))
            self._buffer = self._buffer[5 + length :]


@dataclass
class Connection:
    """One relayed TCP connection: client to server (``up``) and back (``down``)."""

    up: Direction = field(default_factory=Direction)
    down: Direction = field(default_factory=Direction)

    @property
    def total(self) -> int:
        return self.up.size + self.down.size


class Relay:
    """A loopback TCP relay to ``target``: every accepted connection is forwarded and counted."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.connections: list[Connection] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection()
            self.connections.append(conn)
            threading.Thread(target=_pump, args=(client, server, conn.up), daemon=True).start()
            threading.Thread(target=_pump, args=(server, client, conn.down), daemon=True).start()

    def close(self) -> None:
        self._server.close()


def _pump(src: socket.socket, dst: socket.socket, counter: Direction) -> None:
    try:
        while data := src.recv(65536):
            counter.feed(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def tls_context(site: Deployment, gw: GatewaySetup) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers(TLS12_CIPHERS)  # as the uplink does
    ctx.load_verify_locations(str(site.brokerdir / "device-ca.pem"))
    ctx.load_cert_chain(str(gw.cert), str(gw.key))
    return ctx


def handshake_probe(
    relay: Relay, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[int, ssl.SSLSession | None, bool]:
    """Bytes of one TLS handshake through the relay (session tickets and closing included)."""
    before = len(relay.connections)
    raw = socket.create_connection(("127.0.0.1", relay.port))
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
    sock.settimeout(0.5)
    with contextlib.suppress(TimeoutError, ssl.SSLError):
        sock.recv(1)  # the server's tickets follow its Finished: read them
    got, reused = sock.session, bool(sock.session_reused)
    sock.close()
    wait_for(lambda: len(relay.connections) > before, "the probe connection")
    time.sleep(0.3)
    return relay.connections[before].total, got, reused


def keepalive_probe(relay: Relay, site: Deployment, gw: GatewaySetup) -> tuple[int, int]:
    """Wire bytes of one PINGREQ and one PINGRESP: a client idles with a 1 s keepalive."""
    before = len(relay.connections)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gw.device, protocol=mqtt.MQTTv5)
    client.tls_set_context(tls_context(site, gw))
    client.connect("127.0.0.1", relay.port, keepalive=1)
    client.loop_start()
    time.sleep(3.5)
    client.disconnect()
    client.loop_stop()
    time.sleep(0.3)
    conn = relay.connections[before]
    # MQTT packets of 2 bytes (PINGREQ, PINGRESP, DISCONNECT) are TLS 1.3 records of 19
    pings = [n for t, n in conn.up.records if t == APPLICATION_DATA and n == 19]
    pongs = [n for t, n in conn.down.records if t == APPLICATION_DATA and n == 19]
    if not pings or not pongs:
        raise SystemExit("keepalive probe: no PINGREQ/PINGRESP seen")
    return pings[0] + 5, pongs[0] + 5


def agent_config(tmp: Path, site: Deployment, gw: GatewaySetup, relay: Relay, log: Path,
                 speed: float, name: str) -> Path:  # fmt: skip
    path = tmp / f"{name}.toml"
    path.write_text(f"""
device = "{gw.device}"
key = "{gw.key}"
vin = "{gw.vin}"

[[bus]]
name = "can0"
interface = "virtual"
channel = "unused-{name}"
signal_map = "{REPO / "dbc" / "msp_demo.toml"}"

[replay]
log = "{log}"
speed = {speed}
exit_at_end = true

[card]
enabled = false

[outbox]
path = "{tmp / f"{name}.db"}"

[uplink]
broker = "mqtts://127.0.0.1:{relay.port}"
ca = "{site.brokerdir / "device-ca.pem"}"
cert = "{gw.cert}"

[agent]
no_frames_s = 600
stop_flush_s = 30
queue_size = 100000
""")
    return path


@dataclass
class Run:
    name: str
    keepalive_s: float
    wall_s: float
    connection_bytes: int
    connections: int
    kinds: Counter[str]
    kind_bytes: Counter[str]
    batch_lf: int


def run_agent(tmp: Path, site: Deployment, gw: GatewaySetup, log: Path, speed: float,
              name: str, settings: dict[str, str]) -> Run:  # fmt: skip
    relay = Relay(site.device_port)
    config = agent_config(tmp, site, gw, relay, log, speed, name)
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    started = time.monotonic()
    with (tmp / f"{name}.log").open("wb") as out:
        done = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config",
                               str(config), *sets], stdout=out, stderr=subprocess.STDOUT,
                              cwd=REPO, env=os.environ, check=False)  # fmt: skip
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{name}: msp-agent run exited {done.returncode}, see {tmp / name}.log")
    time.sleep(1.0)
    relay.close()
    if os.environ.get("UPLINK_BYTES_DUMP"):  # TLS records (type, length) of each connection
        for i, conn in enumerate(relay.connections):
            for way, d in (("up", conn.up), ("down", conn.down)):
                print(f"{name} #{i} {way} {d.size} B: {sorted(Counter(d.records).items())}")
    # 2-byte MQTT packets (PINGREQ, PINGRESP, DISCONNECT) are 19-byte TLS records: the
    # replay's few pings are left out here, an hour's worth is computed in report()
    pings = sum(5 + n for c in relay.connections for d in (c.up, c.down)
                for t, n in d.records if t == APPLICATION_DATA and n == 19)  # fmt: skip
    stored = site.stored(gw.device)
    kinds: Counter[str] = Counter()
    kind_bytes: Counter[str] = Counter()
    for _seq, jws in stored:
        part = jws.split(".")[1]
        kind = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["kind"]
        kinds[kind] += 1
        kind_bytes[kind] += len(jws)
    batch_lf = len(stored) if settings.get("uplink.batch_records") != "1" else 0
    return Run(name, float(settings.get("uplink.keepalive_s", 300)), wall,
               sum(c.total for c in relay.connections) - pings, len(relay.connections), kinds,
               kind_bytes, batch_lf)  # fmt: skip


def report(run: Run, hour: float, handshake: int, ping: tuple[int, int]) -> float:
    scale = 3600.0 / hour
    payload = sum(run.kind_bytes.values())
    framing = run.connection_bytes - run.connections * handshake - payload
    keepalive = 3600.0 / run.keepalive_s * sum(ping)
    total = (run.connection_bytes * scale) + keepalive
    print(f"\n== {run.name}: {run.connections} connection(s), replay took {run.wall_s:.0f} s")
    for kind, size in sorted(run.kind_bytes.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<14} {run.kinds[kind]:>4} records {size * scale / 1024:7.2f} KB/h "
              f"(~{size // run.kinds[kind]} B each)")  # fmt: skip
    print(f"  {'MQTT/TLS framing':<26} {framing * scale / 1024:7.2f} KB/h")
    print(f"  {'TLS handshake':<26} {run.connections * handshake * scale / 1024:7.2f} KB/h "
          f"({run.connections} x {handshake} B)")  # fmt: skip
    print(f"  {'keepalive (computed)':<26} {keepalive / 1024:7.2f} KB/h "
          f"(every {run.keepalive_s:.0f} s, {sum(ping)} B a ping and its answer)")  # fmt: skip
    print(f"  {'total':<26} {total / 1024:7.2f} KB per driving hour")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, help="a drive to replay (default: simulate one)")
    parser.add_argument("--duration", type=float, default=3600, help="simulated drive [3600 s]")
    parser.add_argument("--speed", type=float, default=40.0, help="replay speed [40]")
    parser.add_argument("--only", choices=["baseline", "now"], help="one run only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="uplink-bytes-") as tmpdir:
        tmp = Path(tmpdir)
        log = args.log
        if log is None:
            log = tmp / "drive.log"
            subprocess.run([sys.executable, "-m", "edge_agent.cli", "simulate", "--duration",
                            str(args.duration), "--no-background", "--truth",
                            str(tmp / "truth.json"), str(log)], check=True, cwd=REPO)  # fmt: skip
            hour = json.loads((tmp / "truth.json").read_text())["duration_s"]
        else:
            hour = args.duration
        site = Deployment(tmp / "site", CardIssuer(tmp / "anchors"))
        site.configure()
        assert site.broker is not None
        site.broker.start()
        site.start_registry()
        try:
            s = args.speed
            runs = {
                "baseline": {"uplink.keepalive_s": "30", "uplink.batch_records": "1",
                             "uplink.linger_s": "0", "uplink.session_expiry_s": "0",
                             "agent.health_interval_s": f"{300 / s}",
                             "agent.health_max_interval_s": f"{300 / s}"},
                "now": {"agent.health_interval_s": f"{300 / s}",
                        "agent.health_max_interval_s": f"{3600 / s}",
                        "uplink.linger_s": f"{30 / s}"},
            }  # fmt: skip
            totals = {}
            for name, settings in runs.items():
                if args.only and name != args.only:
                    continue
                # ids of one length: the id is in every record's header and payload
                gw = site.enroll_gateway(f"{DEVICE}-{name[:3]}", VIN)
                probe = Relay(site.device_port)
                ctx = tls_context(site, gw)
                full, session, _ = handshake_probe(probe, ctx)
                resumed, _, reused = handshake_probe(probe, ctx, session)
                ping = keepalive_probe(probe, site, gw)
                probe.close()
                if name == "now" or args.only:
                    print(f"TLS handshake {full} B full, {resumed} B resumed"
                          f"{'' if reused else ' (NOT resumed: the broker issued no ticket)'}; "
                          f"PINGREQ {ping[0]} B, PINGRESP {ping[1]} B on the wire")  # fmt: skip
                run = run_agent(tmp, site, gw, log, s, name, settings)
                totals[name] = report(run, hour, full, ping)
            if len(totals) == 2:
                print(f"\n{totals['now'] / 1024:.1f} KB/h now, {totals['baseline'] / 1024:.1f} "
                      f"KB/h with the previous settings (goal: <= 10 KB/h)")  # fmt: skip
        finally:
            site.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
