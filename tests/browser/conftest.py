"""Browser tests: the web app (web/, served by the local stack at /app/) driven in Debian's Chromium by
Playwright for Python. No browser is downloaded: Playwright launches the system's Chromium
(`/usr/bin/chromium`, or $AIGC_CHROMIUM); `.ci/run` installs the `chromium` package where it can.
The tests are skipped, saying why, only when no Chromium is found.

The stack is the e2e tests' (tests/e2e/conftest.py `start_stack`), a stack of its own: the console test
compares the business numbers with every task of the stack, so no other suite's tasks may be in it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import start_stack

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 20_000


def chromium_path() -> str | None:
    for candidate in (os.environ.get("AIGC_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set AIGC_CHROMIUM): the browser tests need one")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory, chromium):
    running = start_stack(tmp_path_factory.mktemp("browser-logs"), name="browser")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def page(chromium, web_stack):
    context = chromium.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def app_url(stack, route: str = "") -> str:
    return f"{stack.url}/app/{route}"


def sign_in(page, stack, user: str, *, admin: bool = False, route: str = "#/create") -> None:
    """The local dev sign-in form, then wait for the page it returns to."""
    page.goto(app_url(stack, "#/signin"))
    page.wait_for_selector("body[data-ready]")
    page.get_by_label("User name").fill(user)
    if admin:
        page.get_by_label("Operator (admins group)").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(".mainnav:not([hidden])")
    if route != "#/create":
        page.goto(app_url(stack, route))
