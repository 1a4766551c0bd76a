"""Playwright driving Debian's Chromium against the live server, with a screenshot of every page on failure.

Screenshots go to BROWSER_SCREENSHOT_DIR, by default test-output/screenshots
in the repository, named after the test. The browser is /usr/bin/chromium
(apt-get install chromium); Playwright's own browser downloads are not used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

# The whole portal (worker, beat, gateway) for the release flow test.
from tests.integration.conftest import stack  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOT_DIR = Path(os.environ.get("BROWSER_SCREENSHOT_DIR", ROOT / "test-output" / "screenshots"))
PASSWORD = "a-long-browser-password-1"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def allow_orm_beside_playwright():
    """Let the ORM run while Playwright's sync API has an event loop in this thread.

    Django refuses ORM calls from a thread with a running event loop, and
    Playwright's sync API keeps one for the browser's lifetime. The tests
    call the ORM only between browser calls, never from inside the loop.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(allow_orm_beside_playwright):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with 'apt-get install chromium'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, request):
    """Return a function that opens a page in a new browser context (its own cookies) of a given size."""
    contexts = []

    def open_(viewport: dict = DESKTOP):
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_

    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        _save_screenshots(request.node, contexts)
    for context in contexts:
        context.close()


def _save_screenshots(item, contexts) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", item.nodeid)
    saved = []
    for context_number, context in enumerate(contexts):
        for page_number, page in enumerate(context.pages):
            path = SCREENSHOT_DIR / f"{name}-{context_number}-{page_number}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(str(path))
    item.add_report_section("call", "screenshots", "\n".join(saved))


@pytest.fixture
def fast_passwords(settings):
    """Hash test passwords cheaply; the live server thread shares these settings."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def person(django_user_model, fast_passwords):
    """Return a function that creates a user with a password and the given role groups."""

    def create(username: str, *roles: str):
        user = django_user_model.objects.create_user(username=username, password=PASSWORD)
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    return create


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")


def mark_document(page) -> None:
    """Set a flag on the window that a full page load would clear."""
    page.evaluate("window.__sameDocument = true")


def same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")
