"""docs/install-raspberry-pi.md as a user follows it: the files it copies from /opt/msp are in
the project, and its key, configuration and check steps run as written (with /etc/msp and
/opt/msp pointed at a temporary directory and this checkout)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from edge_agent.cli import main

REPO = Path(__file__).parent.parent.parent
GUIDE = (REPO / "docs" / "install-raspberry-pi.md").read_text()


def shell_lines() -> list[str]:
    """The guide's ``sh`` blocks, one command a line (continuations joined, comments off)."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", GUIDE, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.split("  #")[0].strip())
    return lines


def test_every_file_it_copies_from_opt_msp_is_in_the_project() -> None:
    paths = set(re.findall(r"/opt/msp/([\w./-]+[\w])", GUIDE))
    paths = {p for p in paths if not p.startswith(".venv")}
    assert {"systemd/msp-agent.service", "systemd/80-can.network",
            "examples/agent.toml"} <= paths  # fmt: skip
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []


def test_the_install_is_from_the_project_not_a_placeholder() -> None:
    assert "example.invalid" not in GUIDE
    assert any(line.startswith("git archive ") and "--prefix=msp/" in line
               for line in shell_lines())  # fmt: skip
    assert "sudo tar -xzf msp-gateway.tar.gz -C /opt" in shell_lines()
    assert "sudo /opt/msp/.venv/bin/pip install '/opt/msp[card]'" in shell_lines()


def _command(prefix: str) -> list[str]:
    """The arguments after the program of the one command line that contains ``prefix``
    (``sudo``, ``sudo -u USER`` and the program's directory left out)."""
    program, *rest = prefix.split()
    [line] = [line for line in shell_lines() if re.search(rf"(^|/| ){program} {rest[0]}", line)]
    words = shlex.split(line)
    start = next(i for i, w in enumerate(words[:-1]) if (w == program or w.endswith(f"/{program}"))
                 and words[i + 1] == rest[0])
    args = words[start + 1:]
    assert " ".join(args).startswith(" ".join(rest)), line
    return args


def test_the_key_step_writes_the_csr_the_enrolment_step_sends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _command("msp-agent keys init")
    args = [a.replace("/etc/msp/", f"{tmp_path}/") for a in args]
    assert main(args) == 0
    csr = re.search(r"/etc/msp/(\S+\.csr)", GUIDE)
    assert csr is not None and (tmp_path / csr[1]).is_file()
    enrol = _command("msp-registry enroll")
    assert enrol[enrol.index("--csr") + 1] == csr[1]
    capsys.readouterr()


def test_the_check_step_accepts_the_example_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text((REPO / "examples" / "agent.toml").read_text()
                      .replace("/opt/msp/", f"{REPO}/"))  # fmt: skip
    args = _command("msp-agent run")
    args = [str(config) if a == "/etc/msp/agent.toml" else a for a in args]
    assert args[-1] == "--check"
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert 'consent.recipient = "acme"' in out
    assert "PosixPath" not in "\n".join(out)
