"""Small HTML helpers: escaping, the page layout, tables, an SVG score line. Everything a
page loads (``/static/style.css``, ``/static/live.js``) is served by the registry itself."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote

from .auth import Principal


def e(value: object) -> str:
    """``value`` as escaped HTML text (``None`` as an em dash)."""
    return "—" if value is None else escape(str(value), quote=True)


def url(*parts: str) -> str:
    """A path of percent-encoded segments: ``url("fleet", "acme")`` → ``/fleet/acme``."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


def link(href: str, text: object) -> str:
    """An ``<a>``."""
    return f'<a href="{e(href)}">{e(text)}</a>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "",
          empty: str = "nothing yet") -> str:  # fmt: skip
    """A table of already escaped cells; ``empty`` when there is no row."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def when(ts: str | None) -> str:
    """An instant as shown: ``2026-11-18 06:13:20Z`` (``—`` for none)."""
    if ts is None:
        return "—"
    return e(ts.replace("T", " ")[:19] + "Z")


def score_text(score: float | None) -> str:
    """A score (``—`` when too little driving or not consented)."""
    return "—" if score is None else f"{score:.1f}"


def trend_text(trend: float | None) -> str:
    """The change of a score, with an arrow."""
    if trend is None:
        return '<span class="trend">—</span>'
    arrow, cls = ("▲", "up") if trend > 0 else ("▼", "down") if trend < 0 else ("■", "flat")
    return f'<span class="trend {cls}">{arrow} {trend:+.1f}</span>'


def sparkline(values: Sequence[float | None], width: int = 240, height: int = 60) -> str:
    """An inline SVG line of scores 0-100 (gaps skipped); empty text for fewer than two."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return ""
    step = width / max(1, len(values) - 1)
    low = max(0.0, min(v for _, v in known) - 5)  # the range the scores move in, not 0-100
    high = min(100.0, max(v for _, v in known) + 5)
    span = max(high - low, 1.0)
    points = " ".join(f"{i * step:.1f},{height - (v - low) / span * height:.1f}"
                      for i, v in known)  # fmt: skip
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="score history">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{points}"/>'
            "</svg>")  # fmt: skip


def layout(title: str, body: str, principal: Principal | None = None, *,
           live: str | None = None) -> str:  # fmt: skip
    """A whole page: header with who is logged in, ``body`` in ``<main>``; ``live`` is the
    event-stream URL whose records refresh the page in place."""
    nav = ""
    if principal is not None:
        nav = (f'<nav><a href="{e(principal.home)}">home</a> <a href="/public">public map</a>'
               f' <span class="who">{e(principal.user)}</span>'
               '<form method="post" action="/logout"><button>log out</button></form></nav>')
    live_attr = f' data-live="{e(live)}"' if live else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{e(title)} · MSP registry</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/style.css">'
        '<script src="/static/live.js" defer></script></head>'
        f'<body{live_attr}><header><h1>{e(title)}</h1>{nav}</header>'
        f"<main>{body}</main>"
        '<footer>MSP registry · read-only · every view of a person\'s data is logged for'
        " them</footer></body></html>"
    )
