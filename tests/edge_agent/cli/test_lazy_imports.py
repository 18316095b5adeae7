"""What ``msp-agent`` loads: only the subcommand it runs, and within it only what the options
ask for (docs/footprint.md). Each command runs in a fresh interpreter, through the real
``main``, on real files; the test reads that interpreter's ``sys.modules`` afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_sync.broker_process import free_port
from edge_agent.cli import SUBCOMMANDS, command_of
from edge_agent.keys import init_device_key
from tests.conftest import DATA, DEMO_MAP, REPO

LOG = DATA / "drive_short.log"
#: What the report extra brings (plotly, matplotlib, numpy and theirs).
DRAWING = ("plotly", "matplotlib", "numpy", "narwhals", "PIL", "edge_agent.report.html",
           "edge_agent.report.png")  # fmt: skip
VIN = "JTDKB20U093456789"

#: Runs msp-agent's main with argv[2:], then writes the loaded modules to argv[1] as JSON.
_RUN_MAIN = """
import json, sys
from edge_agent import cli
try:
    code = cli.main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
sys.exit(code)
"""


def run_main(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    listing = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _RUN_MAIN, str(listing), *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          check=False)  # fmt: skip
    return done, set(json.loads(listing.read_text()))


def loaded(modules: set[str], *packages: str) -> list[str]:
    """The ``packages`` (or any of their submodules) among ``modules``."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "device.key"
    init_device_key(path, "gw-0042")
    return path


def test_replay_without_outbox_loads_no_outbox_cryptography_or_sqlite_utils(
    tmp_path: Path,
) -> None:
    done, modules = run_main(tmp_path, "replay", str(LOG), "--map", str(DEMO_MAP), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == 3000
    assert loaded(modules, "cryptography", "sqlite_utils", "edge_agent.outbox",
                  "edge_agent.writer", "edge_agent.keys", "edge_agent.identity", "paho",
                  "edge_agent.uplink", "edge_agent.service") == []  # fmt: skip
    # nor the report's drawing (the report extra) nor the progress bar (stderr is a pipe)
    assert loaded(modules, *DRAWING, "tqdm", "edge_agent.report") == []
    # and no other subcommand's module: the parser registers only the one it runs
    assert sorted(m for m in modules if m.startswith("edge_agent.cli.")) == [
        "edge_agent.cli.mapargs", "edge_agent.cli.replay"]  # fmt: skip


def test_replay_without_json_off_a_terminal_loads_no_drawing_and_no_bar(tmp_path: Path) -> None:
    done, modules = run_main(tmp_path, "replay", str(LOG), "--map", str(DEMO_MAP))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("drive_short.log: 3,000 frames")
    assert loaded(modules, *DRAWING, "tqdm") == []


@pytest.mark.parametrize(
    ("option", "expected"),
    [("-o", ["plotly", "numpy"]), ("--png", ["matplotlib", "numpy"])],
)
def test_report_loads_only_the_drawing_it_writes(
    tmp_path: Path, option: str, expected: list[str]
) -> None:
    out = tmp_path / "trip.out"
    done, modules = run_main(tmp_path, "report", str(LOG), "--map", str(DEMO_MAP), option,
                             str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000
    assert loaded(modules, "plotly", "matplotlib", "numpy") == expected
    assert loaded(modules, "cryptography", "edge_agent.outbox", "tqdm") == []


def test_replay_with_outbox_loads_it_and_appends(tmp_path: Path, key: Path) -> None:
    outbox = tmp_path / "outbox.db"
    done, modules = run_main(tmp_path, "replay", str(LOG), "--map", str(DEMO_MAP), "--json",
                             "--outbox", str(outbox), "--key", str(key), "--device", "gw-0042",
                             "--vin", VIN)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "records" in json.loads(done.stdout)
    assert outbox.exists()
    assert loaded(modules, "cryptography", "edge_agent.outbox") == [
        "cryptography", "edge_agent.outbox"]  # fmt: skip
    assert loaded(modules, "sqlite_utils") == []  # the outbox speaks sqlite3 itself


def test_the_agent_without_card_or_obd_loads_neither(tmp_path: Path, key: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f"""
device = "gw-0042"
key = "{key}"
vin = "{VIN}"

[[bus]]
name = "can0"
interface = "virtual"
channel = "lazy-imports"
signal_map = "{DEMO_MAP}"

[card]
enabled = false

[outbox]
path = "{tmp_path / "outbox.db"}"

[uplink]
broker = "mqtt://127.0.0.1:{free_port()}"

[replay]
log = "{LOG}"
speed = 1000
exit_at_end = true

[agent]
stop_flush_s = 0.1
""")
    done, modules = run_main(tmp_path, "run", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "outbox.db").exists()  # it did run: outbox, uplink, replay
    assert loaded(modules, "edge_agent.service.agent", "edge_agent.outbox", "paho") == [
        "edge_agent.service.agent", "edge_agent.outbox", "paho"]  # fmt: skip
    assert loaded(modules, "smartcard", "edge_agent.card", "edge_agent.identity",
                  "cryptography.x509", "serial", "isotp", "edge_agent.service.obd_source",
                  "edge_agent.service.driver", "sqlite_utils", "jsonschema") == []  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["replay", "x.log"], "replay"),
        (["-vv", "run", "--check"], "run"),
        (["--verbose", "outbox", "stats", "db"], "outbox"),
        (["--help"], None),
        (["-v"], None),
        ([], None),
        (["replya", "x.log"], None),  # a typo: the full parser says what the choices are
        (["--", "replay"], None),
    ],
)
def test_command_of_finds_the_subcommand(argv: list[str], expected: str | None) -> None:
    assert command_of(argv) == expected


def test_help_and_a_typo_still_list_every_subcommand(tmp_path: Path) -> None:
    done, _ = run_main(tmp_path, "--help")
    assert done.returncode == 0
    for name in SUBCOMMANDS:
        assert f"    {name} " in done.stdout or f"    {name}\n" in done.stdout, name
    done, _ = run_main(tmp_path, "replya")
    assert done.returncode == 2
    assert "invalid choice: 'replya'" in done.stderr and "'replay'" in done.stderr
