"""Reading a trip report's HTML page back: its events, thresholds, scores and sources."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """What the page shows, read with the standard library's HTML parser."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []  # (type, severity) per row of the list
        self.thresholds: dict[str, float] = {}
        self.scores: list[str] = []
        self.penalty_points: list[float] = []
        self.sources: list[str] = []  # src= of scripts, images, frames; href= of links
        self.ids: set[str] = set()
        self._threshold: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "tr" and a.get("class") == "event":
            self.events.append((a["data-type"], a["data-severity"]))
        if "data-threshold" in a:
            self._threshold = a["data-threshold"]
        if "data-score" in a:
            self.scores.append(a["data-score"])
        if "data-penalty-points" in a:
            self.penalty_points.append(float(a["data-penalty-points"]))
        if tag in ("script", "img", "iframe") and a.get("src"):
            self.sources.append(a["src"])
        if tag == "link" and a.get("href"):
            self.sources.append(a["href"])

    def handle_data(self, data: str) -> None:
        if self._threshold is not None:
            self.thresholds[self._threshold] = float(data)
            self._threshold = None


def read_page(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page
