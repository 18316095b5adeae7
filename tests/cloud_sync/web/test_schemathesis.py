"""schemathesis against the running API's own OpenAPI document: no server error for any
generated request, every answer as documented (status, content type, schema), and no
operation that answers without its credential (``ignored_auth``). Bounded example counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cloud_sync.web.seed import PASSWORDS, WebServer

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,ignored_auth")  # fmt: skip


def schemathesis(server: WebServer, tmp_path: Path, *extra: str, config: str = "") -> None:
    tool = Path(sys.executable).with_name("schemathesis")
    args = [str(tool)]
    if config:
        path = tmp_path / "schemathesis.toml"
        path.write_text(config)
        args += ["--config-file", str(path)]
    done = subprocess.run(
        [*args, "run", f"{server.url}/openapi.json", "--auth", f"fleet.acme:{PASSWORDS['acme']}",
         "--checks", CHECKS, "--max-examples", "15", "--workers", "1", *extra],
        capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout


def test_any_fleet_any_path(web: WebServer, tmp_path: Path) -> None:
    # every path parameter generated: mostly other fleets (403), odd text, bad limits (422)
    schemathesis(web, tmp_path, "--phases", "coverage,fuzzing")


def test_own_fleet_every_operation(web: WebServer, tmp_path: Path) -> None:
    # the fleet fixed to the logged-in one: the answers with data, unknown VINs and drivers
    schemathesis(web, tmp_path, "--phases", "examples,coverage,fuzzing,stateful",
                 config='[parameters]\n"path.fleet" = "acme"\n')
