"""What every request handler shares: the store, the credentials, the sessions, the hub."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from ..store import Store
from .auth import COOKIE, Credentials, Principal, Sessions, session_key
from .errors import Forbidden
from .live import Hub


@dataclass
class WebState:
    """The dashboard's shared state (one store connection: handlers run on the event loop,
    one at a time)."""

    store: Store
    credentials: Credentials
    sessions: Sessions
    hub: Hub | None = None
    secure_cookies: bool = False

    @classmethod
    def open(cls, store: Store, secrets_dir: Path, *, session_hours: float = 8.0,
             clock: Callable[[], float] = time.time) -> WebState:  # fmt: skip
        """The state over an open store whose secret files are in ``secrets_dir``."""
        credentials = Credentials(store, secrets_dir)
        sessions = Sessions(session_key(secrets_dir), credentials, int(session_hours * 3600),
                            clock)  # fmt: skip
        return cls(store, credentials, sessions)


def web_state(request: Request) -> WebState:
    """The application's :class:`WebState`."""
    state: WebState = request.app.state.web
    return state


basic_scheme = HTTPBasic(auto_error=False, realm="msp-registry",
                         description="fleet.FLEET or operator.NAME and its password")


def principal_from(request: Request, basic: HTTPBasicCredentials | None) -> Principal | None:
    """Who the request is from: a valid session cookie, else valid Basic credentials."""
    state = web_state(request)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        found = state.sessions.check(cookie)
        if found is not None:
            return found
    if basic is not None:
        return state.credentials.verify(basic.username, basic.password)
    return None


def unauthorized() -> HTTPException:
    """The 401 answer (asks for Basic credentials)."""
    return HTTPException(401, "log in: HTTP Basic with fleet.FLEET or operator.NAME",
                         headers={"WWW-Authenticate": 'Basic realm="msp-registry"'})


def require_fleet(principal: Principal, fleet: str) -> None:
    """Raise ``Forbidden`` unless ``principal`` is the fleet ``fleet``."""
    if principal.role != "fleet" or principal.name != fleet:
        raise Forbidden(f"{principal.user} may not see fleet {fleet[:64]!r}")


def require_operator(principal: Principal) -> None:
    """Raise ``Forbidden`` unless ``principal`` is an operator."""
    if principal.role != "operator":
        raise Forbidden(f"{principal.user} is no registry operator")
