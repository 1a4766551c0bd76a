"""Browser checks on the live server alone: errors next to fields, keyboard use, and layout at
desktop and phone width."""

from __future__ import annotations

import pytest

from deployments.models import Endpoint, Environment, Release
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, log_in, mark_document, same_document
from tests.web.conftest import make_versions, serve

pytestmark = pytest.mark.browser


@pytest.fixture
def scene(transactional_db, person):
    """Dana (data scientist) and a production endpoint serving churn v1 with a release of v2 waiting."""
    for name, approval in (("development", False), ("production", True)):
        Environment.objects.update_or_create(name=name, defaults={"requires_approval": approval})
    v1, v2 = make_versions("churn")
    endpoint = Endpoint.objects.create(name="churn", environment=Environment.objects.get(name="production"))
    serve(endpoint, v1)
    dana = person("dana", "data scientist")
    release = Release.objects.create(endpoint=endpoint, version=v2, stable_version=v1, state="awaiting_approval", requested_by=dana)
    release.events.create(kind="created", message="dana requested Blue/green release of churn v2 to churn", actor=dana)
    # An analysis table is the widest part of the release page.
    check = {"metric": "latency_p95_ms", "value": 7.2, "minimum": None, "maximum": 50.0, "outcome": "passed", "detail": ""}
    release.events.create(kind="analysis", message="analysis passed", data={"step": 1, "outcome": "passed", "checks": [check]})
    return {"release": release}


def test_wizard_errors_next_to_fields_without_reload(live_server, scene, open_page):
    page = open_page()
    log_in(page, live_server.url, "dana")
    page.goto(f"{live_server.url}/releases/new/")
    mark_document(page)

    page.get_by_role("button", name="Next: Endpoint and environment").click()
    error = page.locator("#id_version-model_error")
    error.wait_for()
    assert error.inner_text() == "This field is required."
    assert page.get_by_label("Model").get_attribute("aria-invalid") == "true"
    assert same_document(page)


def test_wizard_endpoint_error_next_to_field(live_server, scene, open_page):
    page = open_page()
    log_in(page, live_server.url, "dana")
    page.goto(f"{live_server.url}/releases/new/")
    page.get_by_label("Model").select_option("churn")
    page.get_by_label("Version or alias").select_option("version:2")
    page.get_by_role("button", name="Next: Endpoint and environment").click()

    page.get_by_label("Endpoint").fill("Not a slug!")
    page.get_by_label("Environment").select_option("development")
    page.get_by_role("button", name="Next: Strategy").click()
    error = page.locator("#id_target-endpoint_error")
    error.wait_for()
    assert "slug" in error.inner_text().lower()


def test_login_and_wizard_work_from_keyboard(live_server, scene, open_page):
    page = open_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type("dana")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/releases/new/")
    page.get_by_label("Model").focus()
    # Typing an option's text picks it without opening the option list.
    page.keyboard.type("churn")
    page.get_by_label("Version or alias").locator('option[value="version:2"]').wait_for(state="attached")
    page.keyboard.press("Tab")
    page.keyboard.type("v2")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Next: Endpoint and environment"
    page.keyboard.press("Enter")
    page.get_by_label("Endpoint").wait_for()
    assert page.locator("[aria-current=step]").inner_text() == "Endpoint and environment"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pages_fit_viewport_width(live_server, scene, open_page, viewport):
    page = open_page(viewport)
    log_in(page, live_server.url, "dana")
    for path in ("/", "/endpoints/churn/", f"/releases/{scene['release'].pk}/", "/releases/new/", "/audit/", "/models/"):
        page.goto(f"{live_server.url}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than the {viewport['width']} px window"
