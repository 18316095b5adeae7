"""The TOML reader of the configuration and signal maps: whatever the file holds, a
ConfigError naming the file, the line and the key, never a Python exception of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.tomlfile import MAX_BYTES, MAX_DEPTH, load_toml, show


def write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "f.toml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # each of these ended in a traceback from tomllib or Python before
        (b'a = 1\n[uplink]\nbroker = "mqtt://\xff\xfe"\n',
         r"f\.toml: line 3 \(uplink\.broker\): not UTF-8 text \(byte 0xff\)"),
        ("[agent]\nqueue_size = " + "9" * 5000 + "\n",
         r"f\.toml: line 2 \(agent\.queue_size\): an integer of 5000 digits; TOML integers "
         r"are 64-bit"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n",
         r"f\.toml: line 1 \(a\): arrays or tables nested too deeply \(at most 32 levels\)"),
        ("b = 1\na = " + "{ x = " * 3000 + "1" + " }" * 3000 + "\n",
         r"f\.toml: line 2 \(a\): arrays or tables nested too deeply"),
        # parsed by tomllib, refused here: beyond TOML's range, or deeper than we read
        ("[agent]\nqueue_size = " + "9" * 400 + "\n",
         r"f\.toml: agent\.queue_size: integer out of range \(1329 bits"),
        ("x = [1, -9223372036854775809]\n", r"f\.toml: x\[1\]: integer out of range"),
        ("a = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
         r"f\.toml: a(\[0\]){32}: nested more than 32 levels deep"),
        ('device = "gw-0001"\nvin = \n', r"f\.toml: invalid TOML: .*line 2"),
    ],
)  # fmt: skip
def test_hostile_content_is_named(tmp_path: Path, data: bytes | str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_toml(write(tmp_path, data), "configuration")


def test_the_64_bit_range_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "a = 9223372036854775807\nb = -9223372036854775808\nc = 1e400\n")
    assert load_toml(path, "x") == {"a": 2**63 - 1, "b": -(2**63), "c": float("inf")}


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml: signal map not found"):
        load_toml(tmp_path / "nothere.toml", "signal map")
    with pytest.raises(ConfigError, match=r": cannot read configuration: Is a directory"):
        load_toml(tmp_path, "configuration")
    with pytest.raises(ConfigError, match="cannot read configuration: File name too long"):
        load_toml(tmp_path / ("x" * 300 + ".toml"), "configuration")
    with pytest.raises(ConfigError, match="cannot read configuration: embedded null byte"):
        load_toml(tmp_path / "a\0b.toml", "configuration")
    big = write(tmp_path, b"# " + b"x" * MAX_BYTES + b"\n")
    with pytest.raises(ConfigError, match=r"f\.toml: larger than 1024 KiB: not a configuration"):
        load_toml(big, "configuration")


def test_show_cuts_what_it_quotes() -> None:
    assert show("gw-1") == "'gw-1'"
    assert len(show("x" * 1000)) < 70 and len(show(10**4000)) < 50
    assert show([[[[[[[[1]]]]]]]]).count("[") < 8
    assert show(10**5000) == "<an integer of 16610 bits>"
