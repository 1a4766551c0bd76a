"""The main job in a browser: a data scientist runs the wizard to a production release and sees it
wait, an ops lead approves it, the page follows the release without a reload, and a rollback puts
the old version back on the traffic split.

Runs the whole stack: live web server, Celery worker and beat, the gateway and real model servers.
"""

from __future__ import annotations

import time

import pytest

from deployments.models import Environment
from tests.browser.conftest import log_in, mark_document, same_document
from tests.conftest import zip_folder
from tests.integration import models
from tests.integration.helpers import ENDPOINT, predict, register, release, wait_for_version

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    # The old version's server keeps running long enough for an instant rollback.
    pytest.mark.stack_env(PORTAL_SCALE_DOWN_DELAY="120"),
]

MODEL = "scaler"
STATE = "[data-testid=release-state]"
PROGRESS = "[data-testid=release-progress]"
TIMELINE_ITEMS = "[data-testid=timeline] li"


@pytest.fixture(scope="module")
def scaler_zips(tmp_path_factory):
    built = {}
    for name, factor in (("v1", 1.0), ("v2", 2.0)):
        folder = models.save(models.Scaler(factor), tmp_path_factory.mktemp(name) / "model")
        built[name] = zip_folder(folder, tmp_path_factory.mktemp(f"{name}-zip") / "model.zip")
    return built


@pytest.fixture
def production_serving_v1(stack, scaler_zips):
    """Serve v1 on the production endpoint and register v2; v1 goes out without approval to set the scene."""
    for name in ("v1", "v2"):
        version = register(stack, MODEL, scaler_zips[name])
        assert version["status"] == "ready", version["status_reason"]

    Environment.objects.filter(name="production").update(requires_approval=False)
    first = release(stack, MODEL, 1, environment="production")
    assert first["state"] == "promoted", first["failure_reason"]
    Environment.objects.filter(name="production").update(requires_approval=True, approvals_required=1)
    wait_for_version(stack, models.OK_PAYLOAD, 1)


def request_release_in_wizard(page, base_url: str) -> None:
    page.goto(f"{base_url}/releases/new/")
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Version or alias").select_option("version:2")
    page.get_by_role("button", name="Next: Endpoint and environment").click()

    page.get_by_label("Endpoint").fill(ENDPOINT)
    page.get_by_label("Environment").select_option("production")
    page.get_by_role("button", name="Next: Strategy").click()

    with page.expect_response(lambda response: "/releases/new/" in response.url):
        page.get_by_label("Canary").check()
    wait_for_swap(page)
    for step in (1, 2):
        change(page, page.get_by_label(f"Step {step} pause (s)"), "2")
        with page.expect_response(lambda response: "/releases/new/" in response.url):
            page.get_by_label(f"Step {step} analysis").uncheck()
        wait_for_swap(page)
    page.get_by_role("button", name="Next: Analysis thresholds").click()
    page.get_by_test_id("no-analysis").wait_for()
    page.get_by_role("button", name="Next: Review").click()
    page.get_by_test_id("signature-compatible").wait_for()
    page.get_by_role("button", name="Request approval").click()
    page.wait_for_url(f"{base_url}/releases/*/")


def change(page, field, value: str) -> None:
    """Type a value and leave the field, waiting for the wizard to re-render the step."""
    with page.expect_response(lambda response: "/releases/new/" in response.url):
        field.fill(value)
        field.press("Tab")
    wait_for_swap(page)


def wait_for_swap(page) -> None:
    """Wait until htmx has swapped and settled the last response, so the next input lands in the new form.

    The response event comes before the swap; a field filled in between is
    replaced by the swap and its change is lost.
    """
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def progress_values_until(page, state_label: str, timeout: float) -> list[int]:
    """Read the progress bar until the state badge shows `state_label`; return the values seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # One evaluate reads both from the same swap of the polled partial.
        progress, state = page.evaluate(
            "([bar, badge]) => [document.querySelector(bar).getAttribute('aria-valuenow'),"
            " document.querySelector(badge).textContent.trim()]",
            [PROGRESS, STATE],
        )
        seen.append(int(progress))
        if state == state_label:
            return seen
        page.wait_for_timeout(150)
    raise AssertionError(f"the release did not reach {state_label!r} in {timeout:.0f} s; progress seen {seen}")


def test_wizard_approval_progress_rollback(stack, production_serving_v1, person, open_page):
    person("dana", "data scientist")
    person("olga", "ops lead")

    scientist = open_page()
    log_in(scientist, stack.web_url, "dana")
    request_release_in_wizard(scientist, stack.web_url)
    assert scientist.locator(STATE).inner_text() == "Awaiting approval"
    assert "olga" in scientist.get_by_test_id("approval-box").inner_text().split("Can approve:")[1]
    release_url = scientist.url

    lead = open_page()
    log_in(lead, stack.web_url, "olga")
    lead.goto(release_url)
    mark_document(lead)
    events_before = lead.locator(TIMELINE_ITEMS).count()
    lead.get_by_label("Comment (optional)").fill("load test passed")
    lead.get_by_role("button", name="Approve").click()

    progress = progress_values_until(lead, "Promoted", timeout=120)
    assert progress[-1] == 100
    assert any(0 < value < 100 for value in progress), progress
    assert lead.locator(TIMELINE_ITEMS).count() > events_before
    assert "olga approved (1 of 1): load test passed" in lead.get_by_test_id("timeline").inner_text()
    assert same_document(lead)

    wait_for_version(stack, models.OK_PAYLOAD, 2)
    lead.get_by_label("Reason to roll back (required)").fill("error budget burned")
    lead.get_by_role("button", name="Roll back").click()
    lead.locator(f'{STATE}:text("Rolled back")').wait_for()
    lead.locator('[data-testid=traffic-table] tr[data-version="1"][data-weight="100.0"]').wait_for()
    assert same_document(lead)

    wait_for_version(stack, models.OK_PAYLOAD, 1)
    assert predict(stack, models.OK_PAYLOAD).headers["x-model-version"] == "1"
