"""Screenshots of the dashboard's main pages from a seeded registry, for docs/:

    .venv/bin/python -m tests.cloud_sync.web.screenshots docs/

Seeds a registry in a temporary directory (``tests/cloud_sync/web/seed.py``, the real ingest
path), runs ``msp-registry web`` on it and photographs each page in Debian's chromium."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cloud_sync import cli
from cloud_sync.pki import DeviceCa
from cloud_sync.store.sqlite import SqliteStore
from tests.cloud_sync.web.browser import browser, log_in
from tests.cloud_sync.web.seed import PASSWORDS, WebServer, seed
from tests.sync_kit import CardIssuer

#: the screenshots, as docs/web.md shows them
PAGES = ("web-fleet.png", "web-vehicle.png", "web-driver.png", "web-operator.png",
         "web-public.png")  # fmt: skip


def take(out: Path) -> list[Path]:
    """Write the screenshots into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = SqliteStore(root / "registry.db")
        try:
            seeded = seed(store, DeviceCa.open(root / "ca"), CardIssuer(root / "anchors"))
        finally:
            store.close()
        assert cli.main(["operator", "add", "ops", "--out", str(root / "ops"),
                         "--db", str(root / "registry.db")]) == 0  # fmt: skip
        ops = (root / "ops" / "operator.ops.secret").read_text().strip()
        server = WebServer(root / "registry.db").start(root / "web.log")
        written = []
        try:
            with browser() as chromium:
                page = chromium.new_page(viewport={"width": 1280, "height": 860})
                log_in(page, server, "fleet.acme", PASSWORDS["acme"])
                shots = {"web-fleet.png": "/fleet/acme",
                         "web-vehicle.png": "/fleet/acme/vehicle/JTACME00001",
                         "web-driver.png": f"/fleet/acme/driver/{seeded.alice['acme']}",
                         "web-public.png": "/public"}  # fmt: skip
                for name, path in shots.items():
                    page.goto(server.url + path)
                    page.screenshot(path=out / name, full_page=True)
                    written.append(out / name)
                page.context.clear_cookies()
                log_in(page, server, "operator.ops", ops)
                page.screenshot(path=out / "web-operator.png", full_page=True)
                written.append(out / "web-operator.png")
        finally:
            server.stop()
    return written


if __name__ == "__main__":
    for path in take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(path)
