"""``msp-registry web`` on the PostgreSQL back end: the same views, logins and refusals, its
secret files (fleet passwords, session key) in ``--secrets-dir``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cloud_sync.pki import DeviceCa
from cloud_sync.store.open import open_store
from tests.cloud_sync.web.seed import PASSWORDS, WebServer, seed
from tests.cloud_sync.web.test_api import get
from tests.pg_server import PgServer
from tests.sync_deploy import wait_for
from tests.sync_kit import CardIssuer


def test_web_on_postgresql(pg_server: PgServer, tmp_path: Path, device_ca: DeviceCa,
                           card_issuer: CardIssuer) -> None:  # fmt: skip
    url = pg_server.create_database()
    secrets = tmp_path / "secrets"
    store = open_store(url, secrets_dir=secrets)
    try:
        seeded = seed(store, device_ca, card_issuer)
    finally:
        store.close()
    web = WebServer(url, ("--secrets-dir", str(secrets))).start(tmp_path / "web.log")
    try:
        acme = ("fleet.acme", PASSWORDS["acme"])
        status, _, body = get(web, "/api/v1/fleets/acme/drivers", *acme)
        assert status == 200
        drivers = {d["pseudonym"]: d for d in json.loads(body)}
        assert set(drivers) == {seeded.alice["acme"], seeded.bob["acme"]}
        assert all(d["score"] is not None for d in drivers.values())
        detail = json.loads(get(web, "/api/v1/fleets/acme/vehicles/JTACME00002", *acme)[2])
        assert [e["body"]["location"] for e in detail["events"]] == [None, None]
        assert get(web, "/api/v1/fleets/globex/drivers", *acme)[0] == 403
        assert get(web, "/api/v1/fleets/acme/drivers")[0] == 401
        assert len(json.loads(get(web, "/api/v1/public/cells")[2])["cells"]) == 37
        key = secrets / "web-session.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        pg_server.stop()  # the database goes away: a clear 503, not a server error
        try:
            status, _, body = get(web, "/api/v1/fleets/acme/vehicles", *acme)
            assert status == 503 and "not answering" in json.loads(body)["detail"]
        finally:
            pg_server.start()
        wait_for(lambda: get(web, "/api/v1/fleets/acme/vehicles", *acme)[0] == 200,
                 "the dashboard to reconnect")  # fmt: skip
    finally:
        web.stop()
        if not pg_server.running:  # the session's server, for the tests after this one
            pg_server.start()
