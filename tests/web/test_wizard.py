"""The release wizard through htmx posts: moving between steps, errors next to fields, and submitting."""

import re

import pytest
from django.urls import reverse

from deployments.models import Release
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

URL = "/releases/new/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def fields(**overrides) -> dict:
    """Every step's fields as the wizard posts them once each step has been seen."""
    data = {
        "version-seen": "1", "version-model": "churn", "version-version": "version:2",
        "target-seen": "1", "target-endpoint": "churn-new", "target-environment": "development",
        "strategy-seen": "1", "strategy-strategy": "blue_green",
        "analysis-seen": "1", "analysis-max_error_rate": "1.0", "analysis-max_p95_latency_ms": "500",
        "analysis-min_requests": "20", "analysis-interval_seconds": "60", "analysis-failure_limit": "2",
        "review-seen": "1",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def canary_steps(*steps) -> dict:
    """Form data for canary rows given as (weight, pause, analysis) or (weight, pause, analysis, wait_for_promotion)."""
    data = {"steps-TOTAL_FORMS": str(len(steps)), "steps-INITIAL_FORMS": "0"}
    for index, (weight, pause, analysis, *wait) in enumerate(steps):
        data[f"steps-{index}-weight"] = str(weight)
        data[f"steps-{index}-pause_seconds"] = str(pause)
        if analysis:
            data[f"steps-{index}-analysis"] = "on"
        if wait and wait[0]:
            data[f"steps-{index}-wait_for_promotion"] = "on"
    return data


def post(client, current, goto, **data):
    return client.post(URL, {"current": current, "goto": goto, **data}, **HTMX)


def test_wizard_first_step_lists_visible_models(world):
    response = client_for(world["dana"]).get(URL)
    assert '<option value="churn">churn</option>' in response.content.decode()


def test_wizard_version_options_for_model(world):
    response = client_for(world["dana"]).get(reverse("release-wizard-versions") + "?version-model=churn")
    assert '<option value="version:2">v2</option>' in response.content.decode()


def test_wizard_missing_model_errors_next_to_field(world):
    response = post(client_for(world["dana"]), "version", "target", **{"version-seen": "1"})
    assert response.status_code == 422
    assert 'aria-describedby="id_version-model_error"' in response.content.decode()


def test_wizard_next_step_shows_no_errors(world):
    data = fields()
    data = {key: value for key, value in data.items() if key.startswith("version-")}
    response = post(client_for(world["dana"]), "version", "target", **data)
    assert "errorlist" not in response.content.decode()


def test_wizard_endpoint_in_other_environment_errors_on_environment(world):
    data = fields(**{"target-endpoint": "churn-production"})
    response = post(client_for(world["dana"]), "target", "strategy", **data)
    assert "Endpoint churn-production is in production" in response.content.decode()


def test_wizard_endpoint_with_open_release_errors_on_endpoint(world):
    data = fields(**{"target-endpoint": "churn-production", "target-environment": "production"})
    response = post(client_for(world["dana"]), "target", "strategy", **data)
    assert "already has release" in response.content.decode()


def test_wizard_restricted_endpoint_name_reported_taken(world):
    data = fields(**{"target-endpoint": "churn-fraud"})
    response = post(client_for(world["dana"]), "target", "strategy", **data)
    assert "is taken; choose another name" in response.content.decode()


def test_wizard_restricted_environment_not_offered(world):
    data = fields()
    response = post(client_for(world["dana"]), "version", "target", **{k: v for k, v in data.items() if k.startswith("version-")})
    assert 'value="fraud"' not in response.content.decode()


def test_wizard_canary_weights_must_increase(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((50, 10, True), (20, 10, True), (100, 0, False)))
    response = post(client_for(world["dana"]), "strategy", "analysis", **data)
    assert "Each step must send more traffic than the one before" in response.content.decode()


def test_wizard_add_step_adds_row(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 10, True), (100, 0, False)))
    response = client_for(world["dana"]).post(URL, {"current": "strategy", "op": "add-step", **data}, **HTMX)
    assert 'name="steps-2-weight"' in response.content.decode()


def test_wizard_remove_step_removes_row(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 10, True), (50, 10, True), (100, 0, False)))
    response = client_for(world["dana"]).post(URL, {"current": "strategy", "op": "remove-step-1", **data}, **HTMX)
    assert 'name="steps-2-weight"' not in response.content.decode()


def test_wizard_preview_estimates_duration(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 60, True), (100, 0, False)))
    response = client_for(world["dana"]).post(URL, {"current": "strategy", "op": "refresh", **data}, **HTMX)
    # 30 s start-up, 60 s pause and a 60 s analysis window.
    assert "Estimated duration: about 2 min 30 s" in response.content.decode()


def test_wizard_review_shows_signature_changes(world):
    data = fields(**{"target-endpoint": "churn-development"})
    world["releases"]["development"].state = "rolled_back"
    world["releases"]["development"].save()
    response = post(client_for(world["dana"]), "analysis", "review", **data)
    assert "column &#x27;plan&#x27; was removed" in response.content.decode()


def test_wizard_incompatible_change_needs_confirmation(world):
    world["releases"]["development"].state = "rolled_back"
    world["releases"]["development"].save()
    data = fields(**{"target-endpoint": "churn-development"})
    response = post(client_for(world["dana"]), "review", "submit", **data)
    assert response.status_code == 422
    assert "confirm that clients can handle the change" in response.content.decode()


def test_wizard_confirmed_incompatible_change_creates_release(world):
    world["releases"]["development"].state = "rolled_back"
    world["releases"]["development"].save()
    data = fields(**{"target-endpoint": "churn-development", "review-confirm_incompatible": "on"})
    post(client_for(world["dana"]), "review", "submit", **data)
    assert Release.objects.filter(endpoint__name="churn-development", state="approved").exists()


def test_wizard_submit_redirects_to_release(world):
    response = post(client_for(world["dana"]), "review", "submit", **fields())
    release = Release.objects.get(endpoint__name="churn-new")
    assert response["HX-Redirect"] == f"/releases/{release.pk}/"


def test_wizard_production_release_waits_for_approval(world):
    data = fields(**{"target-endpoint": "churn-prod-2", "target-environment": "production"})
    post(client_for(world["dana"]), "review", "submit", **data)
    assert Release.objects.get(endpoint__name="churn-prod-2").state == "awaiting_approval"


def test_wizard_stores_canary_plan_for_engine(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 30, True), (60, 0, False)))
    post(client_for(world["dana"]), "review", "submit", **data)
    release = Release.objects.get(endpoint__name="churn-new")
    assert [step for step in release.plan["steps"]] == [
        {"weight": 10.0}, {"pause": {"duration": 30.0}}, {"analysis": release.analysis}, {"weight": 60.0},
    ]


def test_wizard_stores_wait_for_promotion_as_indefinite_pause(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 0, False, True), (60, 0, False)))
    post(client_for(world["dana"]), "review", "submit", **data)
    release = Release.objects.get(endpoint__name="churn-new")
    assert release.plan["steps"] == [{"weight": 10.0}, {"pause": {}}, {"weight": 60.0}]


def test_wizard_preview_names_wait_for_person(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 0, False, True), (60, 0, False)))
    response = post(client_for(world["dana"]), "strategy", "strategy", **data)
    assert "plus the time until a person promotes the release" in response.content.decode()


def test_wizard_keeps_wait_for_promotion_when_adding_step(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 0, False, True)))
    response = client_for(world["dana"]).post(URL, {"current": "strategy", "op": "add-step", **data}, **HTMX)
    checkbox = re.search(r'<input[^>]*name="steps-0-wait_for_promotion"[^>]*>', response.content.decode())
    assert " checked" in checkbox.group(0)


def test_wizard_stores_thresholds_for_engine(world):
    data = fields(**{"strategy-strategy": "canary"}, **canary_steps((10, 30, True), (60, 0, False)))
    post(client_for(world["dana"]), "review", "submit", **data)
    release = Release.objects.get(endpoint__name="churn-new")
    assert release.analysis == {
        "window": 60.0, "min_requests": 20, "failure_limit": 2,
        "metrics": [{"metric": "error_rate", "max": 0.01}, {"metric": "latency_p95_ms", "max": 500.0}],
    }


def test_wizard_blue_green_skips_thresholds(world):
    data = fields(**{"analysis-max_p95_latency_ms": "0"})
    response = post(client_for(world["dana"]), "strategy", "analysis", **data)
    assert 'data-testid="no-analysis"' in response.content.decode()


def test_wizard_blue_green_sends_no_analysis(world):
    post(client_for(world["dana"]), "review", "submit", **fields())
    assert Release.objects.get(endpoint__name="churn-new").analysis == {}


def test_wizard_submit_with_invalid_earlier_step_returns_there(world):
    data = fields(**{"analysis-max_p95_latency_ms": "0", "strategy-strategy": "canary"}, **canary_steps((10, 30, True)))
    response = post(client_for(world["dana"]), "review", "submit", **data)
    assert "Step 4 of 5" in response.content.decode()


def test_wizard_back_keeps_values(world):
    response = post(client_for(world["dana"]), "strategy", "target", **fields())
    assert 'value="churn-new"' in response.content.decode()


def test_wizard_without_htmx_renders_whole_page(world):
    response = client_for(world["dana"]).post(URL, {"current": "version", "goto": "target", **fields()})
    assert "<html" in response.content.decode()


def test_wizard_forbidden_for_viewer(world):
    response = client_for(world["vic"]).get(URL)
    assert response.status_code == 403


def test_wizard_forbidden_for_ops_lead(world):
    response = client_for(world["olga"]).get(URL)
    assert response.status_code == 403
