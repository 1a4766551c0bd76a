"""Checking release plans and analysis settings: accepted forms, defaults and errors that name the step."""

import pytest

from deployments.services import plans
from mlops_portal.errors import InvalidInput

ERROR_RATE = {"metric": "error_rate", "max": 0.01}


def _error(strategy, plan, analysis=None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        plans.normalize(strategy, plan, analysis)
    return caught.value


def test_canary_steps_normalized():
    plan, _ = plans.normalize("canary", {"steps": [{"weight": 10}, {"pause": {"duration": 30}}, {"pause": {}}]}, {})
    assert plan["steps"] == [{"weight": 10.0}, {"pause": {"duration": 30.0}}, {"pause": {}}]


def test_canary_defaults_filled_in(settings):
    settings.PORTAL_SCALE_DOWN_DELAY = 12.0
    plan, _ = plans.normalize("canary", {"steps": [{"weight": 10}]}, {})
    assert (plan["scale_down_delay"], plan["on_deadline"], plan["preview"]) == (12.0, "rollback", None)


def test_canary_tenth_of_percent_accepted():
    plan, _ = plans.normalize("canary", {"steps": [{"weight": 0.1}]}, {})
    assert plan["steps"][0]["weight"] == 0.1


def test_canary_weight_two_decimals_names_step():
    error = _error("canary", {"steps": [{"weight": 10}, {"weight": 12.25}]})
    assert error.field == "plan.steps[1].weight"


def test_canary_weight_two_decimals_message_names_rule():
    error = _error("canary", {"steps": [{"weight": 10}, {"weight": 12.25}]})
    assert error.message.startswith("Step 2: plan.steps[1].weight 12.25 is not a percentage from 0 to 100 with at most one decimal")


def test_canary_weight_above_100_rejected():
    assert _error("canary", {"steps": [{"weight": 150}]}).field == "plan.steps[0].weight"


def test_canary_weight_string_rejected():
    assert _error("canary", {"steps": [{"weight": "10"}]}).field == "plan.steps[0].weight"


def test_canary_step_with_two_kinds_rejected():
    assert _error("canary", {"steps": [{"weight": 10, "pause": {}}]}).field == "plan.steps[0]"


def test_canary_unknown_step_kind_rejected():
    error = _error("canary", {"steps": [{"weight": 10}, {"wait": 5}]})
    assert "exactly one of weight, pause and analysis" in error.message


def test_canary_negative_pause_names_field():
    error = _error("canary", {"steps": [{"pause": {"duration": -1}}]})
    assert error.field == "plan.steps[0].pause.duration"


def test_canary_pause_duration_message_names_path_once():
    error = _error("canary", {"steps": [{"weight": 10}, {"pause": {"duration": -1}}]})
    assert error.message == "Step 2: plan.steps[1].pause.duration must be from 0 to 604800 seconds, got -1."


def test_canary_pause_not_object_names_path_once():
    error = _error("canary", {"steps": [{"pause": 30}]})
    assert error.message == "Step 1: plan.steps[0].pause must be a JSON object, got 30."


def test_canary_pause_unknown_key_names_field():
    error = _error("canary", {"steps": [{"pause": {"seconds": 5}}]})
    assert error.field == "plan.steps[0].pause.seconds"


def test_canary_analysis_step_without_metrics_rejected():
    error = _error("canary", {"steps": [{"weight": 10}, {"analysis": {}}]})
    assert error.field == "plan.steps[1].analysis"


def test_canary_analysis_step_merges_release_analysis():
    plan, _ = plans.normalize("canary", {"steps": [{"analysis": {"window": 20}}]}, {"metrics": [ERROR_RATE], "failure_limit": 2})
    assert plan["steps"][0]["analysis"] == {"window": 20.0, "min_requests": 50, "failure_limit": 2, "metrics": [ERROR_RATE]}


def test_canary_analysis_step_own_metrics_accepted():
    plan, _ = plans.normalize("canary", {"steps": [{"analysis": {"metrics": [ERROR_RATE]}}]}, {})
    assert plan["steps"][0]["analysis"]["metrics"] == [ERROR_RATE]


def test_canary_unused_analysis_rejected():
    error = _error("canary", {"steps": [{"weight": 10}]}, {"metrics": [ERROR_RATE]})
    assert error.field == "analysis"


def test_canary_without_steps_rejected():
    assert _error("canary", {}).field == "plan.steps"


def test_canary_steps_and_linear_rejected():
    error = _error("canary", {"steps": [{"weight": 10}], "linear": {"step_weight": 10, "interval": 5}})
    assert error.field == "plan.steps"


def test_canary_too_many_steps_rejected():
    error = _error("canary", {"steps": [{"weight": 1}] * (plans.MAX_STEPS + 1)})
    assert error.field == "plan.steps"


def test_linear_expands_weights_below_100():
    plan, _ = plans.normalize("canary", {"linear": {"step_weight": 25, "interval": 60}}, {})
    weights = [step["weight"] for step in plan["steps"] if "weight" in step]
    assert weights == [25.0, 50.0, 75.0]


def test_linear_waits_interval_after_each_weight():
    plan, _ = plans.normalize("canary", {"linear": {"step_weight": 50, "interval": 60}}, {})
    assert plan["steps"] == [{"weight": 50.0}, {"pause": {"duration": 60.0}}]


def test_linear_with_analysis_analyses_each_interval():
    plan, _ = plans.normalize("canary", {"linear": {"step_weight": 50, "interval": 45}}, {"metrics": [ERROR_RATE]})
    assert plan["steps"][1]["analysis"]["window"] == 45.0


def test_linear_tiny_step_weight_rejected():
    error = _error("canary", {"linear": {"step_weight": 0.1, "interval": 60}})
    assert error.field == "plan.linear.step_weight"


def test_linear_missing_interval_names_field():
    assert _error("canary", {"linear": {"step_weight": 10}}).field == "plan.linear.interval"


def test_blue_green_default_has_no_steps():
    plan, _ = plans.normalize("blue_green", {}, {})
    assert plan["steps"] == []


def test_blue_green_manual_promotion_adds_pause():
    plan, _ = plans.normalize("blue_green", {"auto_promote": False}, {})
    assert plan["steps"] == [{"pause": {}}]


def test_blue_green_analysis_runs_before_pause():
    plan, _ = plans.normalize(
        "blue_green",
        {"auto_promote": False, "preview": {"header": "X-Preview", "value": "1"}},
        {"metrics": [ERROR_RATE], "window": 10},
    )
    assert [plans.step_kind(step) for step in plan["steps"]] == ["analysis", "pause"]


def test_blue_green_preview_header_lowercased():
    plan, _ = plans.normalize("blue_green", {"preview": {"header": "X-Preview", "value": "1"}}, {})
    assert plan["preview"] == {"header": "x-preview", "value": "1"}


def test_blue_green_analysis_without_preview_rejected():
    assert _error("blue_green", {}, {"metrics": [ERROR_RATE]}).field == "plan.preview"


def test_blue_green_steps_rejected():
    assert _error("blue_green", {"steps": [{"weight": 10}]}).field == "plan.steps"


def test_preview_bad_header_rejected():
    error = _error("blue_green", {"preview": {"header": "bad header", "value": "1"}})
    assert error.field == "plan.preview.header"


def test_unknown_plan_key_rejected():
    assert _error("canary", {"stpes": []}).field == "plan.stpes"


def test_on_deadline_unknown_value_rejected():
    assert _error("canary", {"steps": [{"weight": 5}], "on_deadline": "explode"}).field == "plan.on_deadline"


def test_unknown_metric_names_field():
    error = _error("canary", {"steps": [{"analysis": {}}]}, {"metrics": [{"metric": "accuracy", "min": 0.9}]})
    assert error.field == "analysis.metrics[0].metric"


def test_error_rate_above_one_rejected():
    error = _error("canary", {"steps": [{"analysis": {}}]}, {"metrics": [{"metric": "error_rate", "max": 5}]})
    assert error.field == "analysis.metrics[0].max"


def test_metric_without_threshold_rejected():
    error = _error("canary", {"steps": [{"analysis": {}}]}, {"metrics": [{"metric": "latency_p95_ms"}]})
    assert error.field == "analysis.metrics[0]"


def test_relative_metric_accepted():
    check = {"metric": "latency_p95_ms", "max": 1.2, "relative_to": "stable"}
    _, analysis = plans.normalize("canary", {"steps": [{"analysis": {}}]}, {"metrics": [check]})
    assert analysis["metrics"] == [check]


def test_relative_request_count_rejected():
    check = {"metric": "request_count", "min": 1, "relative_to": "stable"}
    error = _error("canary", {"steps": [{"analysis": {}}]}, {"metrics": [check]})
    assert error.field == "analysis.metrics[0].relative_to"


def test_failure_limit_zero_rejected():
    error = _error("canary", {"steps": [{"analysis": {}}]}, {"metrics": [ERROR_RATE], "failure_limit": 0})
    assert error.field == "analysis.failure_limit"


@pytest.mark.django_db
def test_create_release_bad_step_returns_400_naming_step(api_client, environment, model_version):
    body = {
        "endpoint": "churn", "environment": "development", "model": "churn", "version": 2,
        "strategy": "canary", "plan": {"steps": [{"weight": 10}, {"weight": 101}]},
    }
    response = api_client.post("/api/v1/releases/", body, format="json")
    assert response.json()["error"]["field"] == "plan.steps[1].weight"


@pytest.mark.django_db
def test_create_release_bad_step_stores_nothing(api_client, environment, model_version):
    from deployments.models import Release

    body = {
        "endpoint": "churn", "environment": "development", "model": "churn", "version": 2,
        "strategy": "canary", "plan": {"steps": [{"weight": 101}]},
    }
    api_client.post("/api/v1/releases/", body, format="json")
    assert not Release.objects.exists()


@pytest.mark.django_db
def test_create_release_bad_step_creates_no_endpoint(api_client, environment, model_version):
    from deployments.models import Endpoint

    body = {
        "endpoint": "churn", "environment": "development", "model": "churn", "version": 2,
        "strategy": "canary", "plan": {"steps": [{"weight": 101}]},
    }
    api_client.post("/api/v1/releases/", body, format="json")
    assert not Endpoint.objects.exists()
