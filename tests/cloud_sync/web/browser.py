"""Playwright on Debian's chromium (``scripts/system-deps``; never ``playwright install``)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from tests.cloud_sync.web.seed import WebServer


def chromium_path() -> str:
    """The system chromium; fails the test naming the install step if it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/system-deps (apt-get install chromium)")
    return path


@contextmanager
def browser() -> Iterator[Browser]:
    """A headless chromium."""
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, server: WebServer, user: str, password: str) -> None:
    """Log in through the form, as a person would."""
    page.goto(f"{server.url}/login")
    page.fill("#user", user)
    page.fill("#password", password)
    page.click("button")
    page.wait_for_load_state()


def colours(png: bytes) -> int:
    """How many distinct colours a screenshot has (a blank one has one or two)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    found = image.getcolors(maxcolors=1 << 24)
    return len(found) if found is not None else 1 << 24
