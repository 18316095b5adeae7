"""The agent configuration: one loader, one precedence (command line > environment > file >
defaults), and every error naming the key and what was expected."""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import LICENCE_CLASS_FOR, SCALARS, env_name, load_config, reloaded
from edge_agent.errors import ConfigError

DATA = Path(__file__).parent.parent / "data" / "service"
REPO = Path(__file__).parent.parent.parent
MINIMAL = DATA / "minimal.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


BASE = MINIMAL.read_text().replace("../../../dbc/", f"{REPO}/dbc/")


def test_minimal_file_gets_the_documented_defaults() -> None:
    config = load_config(MINIMAL)
    assert config.device == "gw-0001" and config.vin == "JTDKB20U093456789"
    assert config.vehicle_class == "car" and config.licence_class == "car"
    assert config.outbox_path == Path("/var/lib/msp-agent/outbox.db")
    assert config.health_interval_s == 300.0
    signal_map = config.buses[0].signal_map
    assert signal_map is not None
    assert signal_map.resolve() == (REPO / "dbc" / "msp_demo.toml").resolve()
    assert config.scoring.vehicle_class == "car"
    assert config.broker_host_port == ("127.0.0.1", 1883, False)
    # chosen for a metered cellular link (docs/sync.md, Bytes on the wire)
    assert (config.uplink_keepalive_s, config.uplink_batch_records, config.uplink_linger_s,
            config.uplink_session_expiry_s, config.health_max_interval_s) == (
        300, 32, 30.0, 86400, 3600.0)  # fmt: skip


def test_uplink_settings_for_the_link_are_read_and_bounded(tmp_path: Path) -> None:
    assert BASE.rstrip().endswith('[uplink]\nbroker = "mqtt://127.0.0.1:1883"')
    text = BASE + ("keepalive_s = 600\nbatch_records = 8\nbatch_bytes = 4096\nlinger_s = 0\n"
                   "session_expiry_s = 0\n[agent]\nhealth_max_interval_s = 900\n")
    config = load_config(write(tmp_path, text))
    assert (config.uplink_keepalive_s, config.uplink_batch_records, config.uplink_batch_bytes,
            config.uplink_linger_s, config.uplink_session_expiry_s) == (600, 8, 4096, 0.0, 0)
    assert config.health_max_interval_s == 900.0
    for env, expected in [({"MSP_UPLINK_KEEPALIVE_S": "70000"}, "at most 65535"),
                          ({"MSP_UPLINK_BATCH_BYTES": "10000000"}, "uplink.batch_bytes: at most"),
                          ({"MSP_UPLINK_LINGER_S": "-1"}, "uplink.linger_s: expected"),
                          ({"MSP_UPLINK_SESSION_EXPIRY_S": "1.5"}, "session_expiry_s: expected")]:
        with pytest.raises(ConfigError, match=expected):
            load_config(write(tmp_path, BASE), env)


def test_the_example_configuration_loads(tmp_path: Path) -> None:
    text = (REPO / "examples" / "agent.toml").read_text().replace("/opt/msp/", f"{REPO}/")
    config = load_config(write(tmp_path, text))
    assert config.vehicle_class == "heavy_truck" and config.licence_class == "truck_large"
    assert config.scoring.max_speed_kmh == 80.0
    assert config.buses[0].bitrate == 500_000
    assert config.consent is not None and config.consent.recipient == "acme"
    assert config.consent.categories == ("driving", "maintenance", "score")


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "\n[agent]\nhealth_interval_s = 120\nno_frames_s = 45\n")
    assert load_config(path).health_interval_s == 120.0  # file over default
    env = {"MSP_AGENT_HEALTH_INTERVAL_S": "60", "MSP_OUTBOX_PATH": "/tmp/o.db"}
    config = load_config(path, env)
    assert config.health_interval_s == 60.0 and config.outbox_path == Path("/tmp/o.db")
    config = load_config(path, env, {"agent.health_interval_s": "30"})
    assert config.health_interval_s == 30.0  # command line over environment
    assert config.no_frames_s == 45.0 and config.outbox_path == Path("/tmp/o.db")


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + '\n[outbox]\npath = "state/outbox.db"\n')
    assert load_config(path).outbox_path == tmp_path / "state" / "outbox.db"


def test_licence_class_follows_the_vehicle_class_unless_set(tmp_path: Path) -> None:
    path = write(tmp_path, 'vehicle_class = "light_truck"\n' + BASE)
    assert load_config(path).licence_class == LICENCE_CLASS_FOR["light_truck"]
    assert load_config(path, {"MSP_LICENCE_CLASS": "truck_medium"}).licence_class == (
        "truck_medium"
    )


def test_scoring_overrides_apply_over_the_class_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, 'vehicle_class = "heavy_truck"\n' + BASE
                 + "\n[scoring]\nharsh_braking_mps2 = 2.8\n")  # fmt: skip
    scoring = load_config(path).scoring
    assert scoring.harsh_braking_mps2 == 2.8 and scoring.max_speed_kmh == 80.0


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("vin = 'JTDKB20U093456789'\n[card]\nenabled = false\n", {}, "device: required"),
        (BASE.replace("gw-0001", "gw 1"), {}, "device: expected a device id"),
        (BASE.replace("JTDKB20U093456789", "JTDKB20U09345678O"), {}, "vin: expected a VIN"),
        ("vehicle_class = 'bus'\n" + BASE, {}, "vehicle_class: expected one of car"),
        (BASE, {"MSP_AGENT_HEALTH_INTERVAL_S": "soon"},
         "MSP_AGENT_HEALTH_INTERVAL_S: expected a number, got 'soon'"),
        (BASE, {"MSP_AGENT_QUEUE_SIZE": "0"}, "MSP_AGENT_QUEUE_SIZE: expected a positive"),
        (BASE, {"MSP_UPLINK_MQTT311": "maybe"}, "MSP_UPLINK_MQTT311: expected true or false"),
        (BASE.replace("mqtt://127.0.0.1:1883", "http://x"), {}, "uplink.broker: expected mqtts"),
        (BASE.replace("mqtt://", "mqtts://"), {}, "mqtts:// needs uplink.ca and uplink.cert"),
        (BASE + "\n[outbox]\nsize = 3\n", {}, "outbox.size: unknown key"),
        ("colour = 'red'\n" + BASE, {}, "colour: unknown key"),
        (BASE.replace("[card]\nenabled = false", "[card]"), {},
         "card.anchors: card.enabled is true but no trust anchors"),
        (BASE.replace('name = "can0"', 'name = "CAN 0"'), {}, "bus[0].name: expected a lower"),
        # any other lower-case key is a python-can keyword (test_config_buses.py); this is not
        (BASE.replace('signal_map = "', 'Colour = "'), {},
         "bus[0].Colour: not a python-can keyword"),
        (BASE + "\n[scoring]\nharsh_braking_mps2 = -1\n", {}, "harsh_braking_mps2: expected a "
         "positive"),
        (BASE + "\n[scoring]\nvehicle_class = 'car'\n", {}, "scoring: vehicle_class and "
         "fuel_type are top-level keys"),
        (BASE.replace("msp_demo.toml", "nothere.toml"), {}, "bus[0].signal_map: no such file"),
        (BASE, {"MSP_REPLAY_LOG": "/nothere.log"}, "replay.log: no such file /nothere.log"),
        (BASE.split("[[bus]]")[0] + "[card]\nenabled = false\n", {}, "bus: no [[bus]]"),
        (BASE + "\n[card.consent]\nrecipient = 'x'\ncategories = ['trip']\n", {},
         "card.consent: "),
        (BASE + "\n[card.consent]\nrecipient = 'x'\ncategories = ['driving']\ndays = 0\n",
         {}, "card.consent.days: expected a positive number"),
        (BASE + "\n[card.consent]\nrecipient = 'x'\ncategories = ['driving']\nuntil = 1\n",
         {}, "card.consent.until: unknown key"),
        (BASE + "\n[consent]\nrecipient = 'x'\ncategories = ['driving']\n", {},
         "consent: the consent request is the [card.consent] table"),
    ],
)  # fmt: skip
def test_errors_name_the_key_and_what_was_expected(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'device = "gw-0001"\nvin = \n')
    with pytest.raises(ConfigError, match=r"agent.toml: invalid TOML: .*line 2"):
        load_config(path)


def test_unknown_override_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--set outbox\.size: unknown key"):
        load_config(write(tmp_path, BASE), {}, {"outbox.size": "1"})


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml: configuration not found"):
        load_config(tmp_path / "nothere.toml")


def test_every_scalar_key_has_a_distinct_environment_variable() -> None:
    names = [env_name(key) for key in SCALARS]
    assert len(set(names)) == len(names)
    assert env_name("outbox.path") == "MSP_OUTBOX_PATH"


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(sorted(SCALARS)), value=st.text(max_size=20))
def test_any_environment_value_loads_or_names_its_variable(key: str, value: str) -> None:
    env = {env_name(key): value}
    try:
        load_config(MINIMAL, env)
    except ConfigError as exc:
        assert env_name(key) in str(exc) or key in str(exc)


def test_reload_applies_only_what_is_reloadable(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, BASE))
    new = load_config(write(tmp_path, BASE.replace("gw-0001", "gw-0002")
                            + "\n[agent]\nhealth_interval_s = 7\n[scoring]\nmax_speed_kmh = 90\n"))
    applied, restart = reloaded(old, new)
    assert applied.health_interval_s == 7.0 and applied.scoring.max_speed_kmh == 90.0
    assert applied.device == "gw-0001" and restart == ["device"]


# --- hostile files: each ended in a traceback before; now a ConfigError naming file and key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("mqtt://127.0.0.1:1883", "mqtts://[::1"),
         "uplink.broker: expected mqtts://HOST:PORT, got 'mqtts://[::1' (Invalid IPv6 URL)"),
        (BASE.replace("mqtt://127.0.0.1:1883", "mqtt://host:99999"),
         "uplink.broker: expected mqtts://HOST:PORT, got 'mqtt://host:99999' (Port out of range"),
        (BASE.replace("mqtt://127.0.0.1:1883", "mqtt://host:x"), "uplink.broker: expected"),
        (BASE + "\n[agent]\nhealth_interval_s = 1e400\n",
         "agent.health_interval_s: expected a finite number, got inf"),
        (BASE + "\n[agent]\nqueue_size = " + "9" * 300 + "\n",
         "agent.queue_size: integer out of range"),
        (BASE + "\n[scoring]\nmax_speed_kmh = " + "9" * 400 + "\n",
         "scoring.max_speed_kmh: integer out of range"),
        (BASE.replace('"gw-0001"', '"gw-0001\\n"'), "device: expected a device id such as "
         "gw-0001, got 'gw-0001\\n'"),
        (BASE.replace("msp_demo.toml", "x" * 300 + ".toml"),
         "bus[0].signal_map: cannot open /"),
        (BASE.replace("msp_demo.toml", "a\\u0000b.toml"),
         "bus[0].signal_map: a path cannot contain NUL characters"),
        (BASE.replace("enabled = false", 'enabled = false\nanchors = ["ca.pem", "a\\u0000"]'),
         "card.anchors[1]: a path cannot contain NUL characters"),
        (BASE.replace('device = "gw-0001"', "device = " + "[" * 20 + "]" * 20),
         "device: expected a device id such as gw-0001, got [[[[[[[...]]]]]]]"),
    ],
)  # fmt: skip
def test_hostile_values_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_a_long_replay_log_name_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError, match=r"replay\.log: cannot open .*File name too long"):
        load_config(path, {"MSP_REPLAY_LOG": "/" + "y" * 300})


toml_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(), st.booleans(),
    st.text(max_size=12), st.sampled_from(["gw-0001", "mqtt://[::1", "mqtts://h:0", "0D", "car"]),
)  # fmt: skip
toml_values = st.recursive(
    toml_scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "obd", "log", "10", "x"]), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
KEYS = sorted({*SCALARS, "bus", "card.anchors", "card.consent", "obd.rates", "scoring.hysteresis",
               "scoring.max_speed_kmh", "colour"})  # fmt: skip


def toml_text(value: object) -> str:
    """``value`` as a TOML value (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):  # TOML wants control characters (DEL too) escaped
        return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or c in '\x7f"\\' else c
                             for c in value) + '"'  # fmt: skip
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_text(k)} = {toml_text(v)}" for k, v in value.items()) + "}"



def document_with(overrides: dict[str, object]) -> str:
    """The minimal configuration with ``overrides`` (dotted key → value) set, as TOML."""
    document = tomllib.loads(BASE)
    for key, value in overrides.items():
        *tables, name = key.split(".")
        node = document
        for table in tables:
            if not isinstance(node.get(table), dict):
                node[table] = {}
            node = node[table]
        node[name] = value
    return "\n".join(f"{toml_text(k)} = {toml_text(v)}" for k, v in document.items()) + "\n"


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=4))
def test_any_document_loads_or_names_the_key(overrides: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.toml"
        path.write_text(document_with(overrides))
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(f"{path}: ")
            assert "invalid TOML" not in str(exc)  # the generator writes valid TOML
            assert len(str(exc)) < 600


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=4)),
                min_size=1, max_size=6))  # fmt: skip
def test_any_mutation_of_the_example_loads_or_is_named(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray((REPO / "examples" / "agent.toml").read_bytes().replace(b"/opt/msp/",
                                                                         f"{REPO}/".encode()))
    for pos, new in edits:
        at = pos % len(data)
        data[at : at + len(new)] = new
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.toml"
        path.write_bytes(bytes(data))
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
