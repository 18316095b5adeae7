"""The dashboard in a real browser (Playwright, Debian's chromium): a fleet logs in and sees
its vehicles and its drivers' scores, another fleet's page is 403, and a trip sent by a real
gateway (outbox → mosquitto → registry worker) appears on the open page without a reload."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from edge_agent.outbox import NewRecord
from edge_agent.uplink import MqttUplink
from tests.cloud_sync.web.browser import browser, colours, log_in
from tests.cloud_sync.web.conftest import Registry
from tests.cloud_sync.web.screenshots import PAGES, take
from tests.cloud_sync.web.seed import PASSWORDS, WebServer
from tests.sync_deploy import T0, Deployment, UplinkThread, wait_for
from tests.sync_kit import trip


def test_fleet_logs_in_and_sees_its_vehicles_and_scores(web: WebServer,
                                                        registry: Registry) -> None:  # fmt: skip
    with browser() as chromium:
        page = chromium.new_page()
        log_in(page, web, "fleet.acme", PASSWORDS["acme"])
        assert page.url == f"{web.url}/fleet/acme"
        vins = page.locator("table.vehicles tbody tr td:first-child").all_inner_texts()
        assert vins == ["JTACME00001", "JTACME00002"]
        rows = page.locator("table.drivers tbody tr").all_inner_texts()
        scores = {r.split("\t")[0]: r.split("\t")[1] for r in rows}
        assert set(scores) == {registry.seeded.alice["acme"], registry.seeded.bob["acme"]}
        assert all(re.fullmatch(r"\d+\.\d", s.strip()) for s in scores.values()), scores
        api = page.request.get(f"{web.url}/api/v1/fleets/acme/drivers").json()  # the cookie
        assert {d["pseudonym"]: f"{d['score']:.1f}" for d in api} == {
            k: v.strip() for k, v in scores.items()}
        page.click(f"text={registry.seeded.alice['acme']}")
        page.wait_for_load_state()
        assert "/driver/" in page.url and page.locator("svg.spark").count() == 1
        assert colours(page.screenshot()) > 20
        answer = page.goto(f"{web.url}/fleet/globex")
        assert answer is not None and answer.status == 403
        answer = page.goto(f"{web.url}/api/v1/fleets/globex/vehicles")
        assert answer is not None and answer.status == 403
        page.goto(f"{web.url}/fleet/acme")
        page.click("text=log out")
        page.wait_for_load_state()
        answer = page.goto(f"{web.url}/fleet/acme")
        assert answer is not None and page.url.startswith(f"{web.url}/login")


def test_new_trip_appears_without_a_reload(deployment: Deployment, tmp_path: Path) -> None:
    gw = deployment.enroll_gateway("gw-live", "JTLIVE00001", fleet="acme")
    creds = tmp_path / "fleets"
    assert deployment.registry("fleet", "add", "acme", "--out", str(creds), "--password") == 0
    password = (creds / "fleet.acme.secret").read_text().strip()
    deployment.start_registry()
    log = tmp_path / "web.log"
    web = WebServer(deployment.db, (
        "--broker", f"mqtt://127.0.0.1:{deployment.registry_port}",
        "--broker-password-file", str(deployment.brokerdir / "web.secret"),
    )).start(log)  # fmt: skip
    outbox = gw.open_outbox()
    try:
        wait_for(lambda: "live updates from" in log.read_text(), "the dashboard's MQTT login")
        with browser() as chromium:
            page = chromium.new_page()
            log_in(page, web, "fleet.acme", password)
            assert page.url == f"{web.url}/fleet/acme"
            page.wait_for_selector("body[data-live-state=open]")
            page.evaluate("window.notReloaded = true")
            row = page.locator("table.vehicles tbody tr")
            assert row.all_inner_texts()[0].startswith("JTLIVE00001")
            assert "37.5 km" not in row.all_inner_texts()[0]
            outbox.append_many([NewRecord(trip(37.5, 1.0), T0 + 5000.0)])
            uplink = MqttUplink(deployment.uplink_config(gw), outbox)
            with UplinkThread(uplink):
                expect(page.locator("table.vehicles")).to_contain_text("37.5 km", timeout=30_000)
            assert page.evaluate("window.notReloaded") is True  # the same document
            assert int(page.evaluate("document.body.dataset.updates")) >= 1
            answer = page.request.get(f"{web.url}/api/v1/fleets/acme/vehicles").json()
            assert answer[0]["last_trip"]["body"]["distance_km"] == 37.5
    finally:
        web.stop()
        outbox.close()


def test_public_map_renders(web: WebServer, tmp_path: Path) -> None:
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        answer = page.goto(f"{web.url}/public")
        assert answer is not None and answer.status == 200
        maps = page.locator("svg.map")
        assert maps.count() == 2 and page.locator("svg.map polygon").count() == 74
        shot = maps.first.screenshot()
        assert colours(shot) >= 6  # the hexagons' scale, not a blank box
        fills = set(page.locator("svg.map").first.locator("polygon").evaluate_all(
            "ps => ps.map(p => p.getAttribute('fill'))"))  # fmt: skip
        assert len(fills) >= 6
        page.click("text=2026-11-18T08:00:00Z")
        page.wait_for_load_state()
        assert "hour=2026-11-18T08" in page.url and page.locator("svg.map polygon").count() == 74


def test_screenshots_of_the_main_pages(tmp_path: Path) -> None:
    written = take(tmp_path)
    assert sorted(p.name for p in written) == sorted(PAGES)
    for path in written:
        assert colours(path.read_bytes()) > 30, path.name  # a page, not a blank image
