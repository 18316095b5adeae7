"""``msp-registry web`` as a process on loopback: every answer needs a credential, a fleet
sees only its own data, pages and API agree, the operator sees gateways and no person."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloud_sync import cli
from cloud_sync.broker_process import free_port
from tests.cloud_sync.web.conftest import Registry
from tests.cloud_sync.web.seed import PASSWORDS, WebServer


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(NoRedirect)


def get(server: WebServer, path: str, user: str | None = None, password: str = "",
        cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    request = urllib.request.Request(server.url + path)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if cookie is not None:
        request.add_header("Cookie", cookie)
    try:
        with _opener.open(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def login(server: WebServer, user: str, password: str) -> tuple[int, dict[str, str]]:
    data = urllib.parse.urlencode({"user": user, "password": password, "next": "/"}).encode()
    request = urllib.request.Request(server.url + "/login", data=data, method="POST")
    try:
        with _opener.open(request, timeout=10) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


ACME = ("fleet.acme", PASSWORDS["acme"])


def test_nothing_answers_without_a_credential(web: WebServer, registry: Registry) -> None:
    spec = json.loads(get(web, "/openapi.json")[2])
    alice = registry.seeded.alice["acme"]
    paths = [p.replace("{fleet}", "acme").replace("{vin}", "JTACME00001")
             .replace("{pseudonym}", alice) for p in spec["paths"]
             if p != "/api/v1/public/cells"]  # public statistics name no one: open to all
    assert len(paths) >= 7
    for path in paths:
        status, headers, _ = get(web, path)
        assert status == 401 and headers["www-authenticate"].startswith("Basic"), path
        assert get(web, path, "fleet.acme", "wrong")[0] == 401, path
    for page in ("/", "/fleet/acme", "/fleet/acme/vehicle/JTACME00001",
                 f"/fleet/acme/driver/{alice}", "/operator", "/fleet/acme/live"):
        status, headers, _ = get(web, page)
        assert status == 303 and headers["location"].startswith("/login?next="), page
        assert get(web, page, *ACME)[0] == 303, page  # pages take the session cookie only


def test_fleet_sees_its_own_and_gets_403_elsewhere(web: WebServer, registry: Registry) -> None:
    status, _, body = get(web, "/api/v1/fleets/acme/vehicles", *ACME)
    assert status == 200
    assert [v["vin"] for v in json.loads(body)] == ["JTACME00001", "JTACME00002"]
    for path in ("/api/v1/fleets/globex/vehicles", "/api/v1/fleets/globex/drivers",
                 "/api/v1/fleets/globex/vehicles/JTGLOBEX001", "/api/v1/operator"):
        assert get(web, path, *ACME)[0] == 403, path
    # another fleet's vehicle under one's own fleet: not found, never confirmed to exist
    assert get(web, "/api/v1/fleets/acme/vehicles/JTGLOBEX001", *ACME)[0] == 404
    globex_alice = registry.seeded.alice["globex"]
    assert get(web, f"/api/v1/fleets/acme/drivers/{globex_alice}", *ACME)[0] == 404
    # a pseudonym no fleet could have (non-ASCII): not found, not a server error
    assert get(web, "/api/v1/fleets/acme/drivers/T%EB%83%9D%3D7o", *ACME)[0] == 404
    drivers = json.loads(get(web, "/api/v1/fleets/acme/drivers", *ACME)[2])
    assert {d["pseudonym"] for d in drivers} == {registry.seeded.alice["acme"],
                                                 registry.seeded.bob["acme"]}
    assert all(d["score"] is not None for d in drivers)
    text = json.dumps(drivers)
    assert "p-" not in text.replace("fp-", "")  # no internal person id
    detail = json.loads(get(web, f"/api/v1/fleets/acme/drivers/{registry.seeded.bob['acme']}",
                            *ACME)[2])  # fmt: skip
    assert len(detail["trips"]) == 3 and detail["driver"]["trips"] == 3
    events = json.loads(get(web, "/api/v1/fleets/acme/events?limit=2", *ACME)[2])
    assert len(events) == 2 and events[0]["ts"] >= events[1]["ts"]


def test_pages_after_login(web: WebServer, registry: Registry) -> None:
    assert login(web, "fleet.acme", "wrong")[0] == 401
    status, headers = login(web, *ACME)
    assert status == 303 and headers["location"] == "/fleet/acme"
    cookie_header = headers["set-cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=strict" in cookie_header
    cookie = cookie_header.split(";")[0]
    status, headers, body = get(web, "/fleet/acme", cookie=cookie)
    page = body.decode()
    assert status == 200 and "JTACME00001" in page and registry.seeded.bob["acme"] in page
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    assert get(web, "/fleet/globex", cookie=cookie)[0] == 403
    assert get(web, "/fleet/globex/live", cookie=cookie)[0] == 403
    assert get(web, "/fleet/acme/live", cookie=cookie)[0] == 204  # no broker: no stream
    assert get(web, "/operator", cookie=cookie)[0] == 403
    vehicle = get(web, "/fleet/acme/vehicle/JTACME00001", cookie=cookie)[2].decode()
    assert "P0301" in vehicle and "harsh_braking" in vehicle
    bob = get(web, "/fleet/acme/vehicle/JTACME00002", cookie=cookie)[2].decode()
    assert "removed (no location consent)" in bob and "35.68" not in bob
    driver = get(web, f"/fleet/acme/driver/{registry.seeded.alice['acme']}", cookie=cookie)
    assert driver[0] == 200 and "<svg" in driver[2].decode()
    assert get(web, "/static/style.css")[0] == 200


def test_operator(web: WebServer, registry: Registry, tmp_path: Any) -> None:
    out = tmp_path / "ops"
    assert cli.main(["operator", "add", "ops", "--out", str(out), "--db", str(registry.db)]) == 0
    password = (out / "operator.ops.secret").read_text().strip()
    status, _, body = get(web, "/api/v1/operator", "operator.ops", password)
    assert status == 200
    value = json.loads(body)
    assert value["rejections"] == {"malformed": 1}
    depths = {g["device"]: g["queue_depth"] for g in value["gateways"]}
    assert {d: depths[d] for d in ("gw-1", "gw-2", "gw-3")} == {"gw-1": 3, "gw-2": 57, "gw-3": 0}
    assert depths["gw-bus-0"] is None  # no health record from it
    assert get(web, "/api/v1/fleets/acme/vehicles", "operator.ops", password)[0] == 403
    status, headers = login(web, "operator.ops", password)
    assert status == 303 and headers["location"] == "/operator"
    page = get(web, "/operator", cookie=headers["set-cookie"].split(";")[0])[2].decode()
    assert "can_bus_off 1" in page and "malformed" in page


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/",
                                    "/\\evil.example/", "/\tevil", "evil"])
def test_login_redirects_only_to_this_site(web: WebServer, target: str) -> None:
    data = urllib.parse.urlencode({"user": ACME[0], "password": ACME[1], "next": target})
    request = urllib.request.Request(web.url + "/login", data=data.encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        _opener.open(request, timeout=10)
    assert caught.value.code == 303 and caught.value.headers["location"] == "/fleet/acme"


def test_public_statistics_need_no_credential(web: WebServer) -> None:
    status, _, body = get(web, "/api/v1/public/cells")
    value = json.loads(body)
    assert status == 200 and value["hours"] == ["2026-11-18T08:00:00Z", "2026-11-18T09:00:00Z"]
    assert len(value["cells"]) == 37 and {c["hour"] for c in value["cells"]} == {value["hours"][1]}
    assert all(isinstance(c["contributors"], int) for c in value["cells"])  # noised too
    early = json.loads(get(web, "/api/v1/public/cells?hour=2026-11-18T08:00:00Z")[2])
    assert {c["hour"] for c in early["cells"]} == {"2026-11-18T08:00:00Z"}
    assert json.loads(get(web, "/api/v1/public/cells?hour=nope")[2])["cells"] == []
    status, _, page = get(web, "/public")
    assert status == 200 and page.decode().count("<polygon") == 2 * 37
    assert "gw-bus" not in page.decode() and "JTBUS" not in page.decode()


def test_login_goes_on_to_the_page_asked_for(web: WebServer) -> None:
    status, headers, _ = get(web, "/fleet/acme/vehicle/JTACME00001")
    assert status == 303 and headers["location"] == "/login?next=/fleet/acme/vehicle/JTACME00001"
    data = urllib.parse.urlencode({"user": ACME[0], "password": ACME[1],
                                   "next": "/fleet/acme/vehicle/JTACME00001"}).encode()
    request = urllib.request.Request(web.url + "/login", data=data, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        _opener.open(request, timeout=10)
    assert caught.value.headers["location"] == "/fleet/acme/vehicle/JTACME00001"


def test_answers_with_a_persons_data_go_to_the_exchange_log(registry: Registry,
                                                            tmp_path: Path) -> None:  # fmt: skip
    log = tmp_path / "web.log"
    server = WebServer(registry.db).start(log)
    try:
        def logged() -> list[str]:
            return [line for line in log.read_text().splitlines() if "exchange log:" in line]

        assert get(server, "/api/v1/fleets/acme/vehicles/JTACME00002", *ACME)[0] == 200
        assert logged()[-1].endswith("item(s) of 1 person(s) shown to acme")
        assert get(server, "/api/v1/fleets/acme/drivers", *ACME)[0] == 200
        assert logged()[-1].endswith("2 item(s) of 2 person(s) shown to acme")  # two scores
        before = len(logged())
        assert get(server, "/api/v1/fleets/globex/drivers", *ACME)[0] == 403
        assert get(server, "/api/v1/public/cells")[0] == 200
        assert len(logged()) == before  # a refusal and public statistics show no one
    finally:
        server.stop()


def test_pages_work_while_the_broker_is_down(registry: Registry, tmp_path: Path) -> None:
    server = WebServer(registry.db, ("--broker", f"mqtt://127.0.0.1:{free_port()}")).start(
        tmp_path / "web.log")
    try:
        assert get(server, "/api/v1/fleets/acme/vehicles", *ACME)[0] == 200
        status, headers = login(server, *ACME)
        assert status == 303
        assert get(server, "/fleet/acme", cookie=headers["set-cookie"].split(";")[0])[0] == 200
    finally:
        server.stop()
