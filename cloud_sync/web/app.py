"""The dashboard application: the API and pages over one store, static files from the
package, refusals as 401/403/404, security headers, live updates from the broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import StoreError
from ..worker import BrokerConfig
from . import api, pages
from .errors import Forbidden, NotFound
from .html import e, layout
from .live import Hub, MqttFeed
from .state import WebState

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")

#: Nothing but the registry itself may supply a page's parts.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
                               " frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(state: WebState, broker: BrokerConfig | None = None) -> FastAPI:
    """The ASGI application over ``state``; with ``broker``, live updates from it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed = None
        if broker is not None:
            state.hub = Hub(asyncio.get_running_loop())
            feed = MqttFeed(broker, state.hub)
            feed.start()
        try:
            yield
        finally:
            if feed is not None:
                feed.stop()

    app = FastAPI(title="MSP registry", version="1", lifespan=lifespan,
                  description="Read-only API of the Mobility Smart Passport registry: each"
                  " recipient sees what the MQTT feed gave it, under the same consents.",
                  docs_url=None, redoc_url=None)  # fmt: skip
    app.state.web = state
    app.include_router(api.router)
    app.include_router(api.public_router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def refuse(request: Request, status: int, detail: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, status_code=status)
        return HTMLResponse(layout(f"{status}", f"<section><p>{e(detail)}</p></section>"),
                            status_code=status)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return refuse(request, 403, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return refuse(request, 404, str(exc))

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> Response:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return refuse(request, 503, "the registry database is not answering; try again")

    @app.exception_handler(pages.LoginRequired)
    async def login_required(_request: Request, exc: pages.LoginRequired) -> Response:
        return pages.login_redirect(exc.path)

    app.add_middleware(SecurityHeaders)
    return app


class SecurityHeaders:
    """Adds :data:`_HEADERS` to every answer (plain ASGI: event streams pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
