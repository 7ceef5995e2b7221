"""Headless Chromium for the report's browser test: Debian's `chromium`, driven by Playwright's Python API.

Playwright never downloads a browser here: it launches the system executable. Where no
chromium is installed the test is skipped, unless SPECSTRESS_REQUIRE_BROWSER=1 (set by
.ci/run, which installs it), so CI cannot pass without having run it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    # No outside network on these machines; these keep Chromium from trying to reach it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = (
        os.environ.get("SPECSTRESS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if path is None:
        if os.environ.get("SPECSTRESS_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "chromium is not installed but SPECSTRESS_REQUIRE_BROWSER=1 (scripts/test installs it as root)"
            )
        pytest.skip("chromium is not installed (scripts/test installs Debian's chromium when run as root)")
    return path


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium, and the list its console errors and page errors go to."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console",
                lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            yield page, errors
        finally:
            browser.close()
