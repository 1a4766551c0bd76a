"""The release engine end to end: blue/green with preview, canary under load, automatic rollback, abort and retry, a killed worker.

Each test runs the whole stack (live web server, Celery worker and beat, the
gateway and real model servers) on PostgreSQL and Redis, with short delays set
through the worker's environment.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from django.db import DatabaseError, connection, transaction

from deployments.models import ModelServer, Release, RouteRevision
from tests.conftest import zip_folder
from tests.integration import models
from tests.integration.conftest import wait_until
from tests.integration.helpers import (
    ENDPOINT,
    RequestStream,
    act,
    events,
    predict,
    register,
    release,
    start_release,
    wait_for_release,
    wait_for_version,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.stack_env(PORTAL_SCALE_DOWN_DELAY="2", PORTAL_STALL_GRACE="2"),
]

MODEL = "scaler"
ERROR_RATE_CHECK = {"metric": "error_rate", "max": 0.02}


@pytest.fixture(scope="module")
def model_zips(tmp_path_factory):
    """Zipped models: v1 and v2 scale x, flaky fails on negative x, slow takes 4 s on its input example."""
    built = {}
    for name, estimator, example in (
        ("v1", models.Scaler(1.0), 1.0),
        ("v2", models.Scaler(2.0), 1.0),
        ("flaky", models.FlakyScaler(3.0), 1.0),
        ("slow", models.SlowExampleScaler(4.0, seconds=4.0), models.SLOW_VALUE),
    ):
        folder = models.save(estimator, tmp_path_factory.mktemp(name) / "model", example=example)
        built[name] = zip_folder(folder, tmp_path_factory.mktemp(f"{name}-zip") / "model.zip")
    return built


def _register(stack, model_zips, *names) -> list[int]:
    numbers = []
    for name in names:
        version = register(stack, MODEL, model_zips[name])
        assert version["status"] == "ready", version["status_reason"]
        numbers.append(version["version"])
    return numbers


def _invocations(stack) -> str:
    return f"{stack.gateway_url}/endpoints/{ENDPOINT}/invocations"


def _event_kinds(stack, release_id) -> list[str]:
    return [event["kind"] for event in events(stack, release_id)]


def _preview_response(stack, candidate: int):
    """Return a response to a preview request if the candidate answered it, else None."""
    response = httpx.post(_invocations(stack), json=models.OK_PAYLOAD, headers={"x-preview": "yes"}, timeout=10)
    return response if response.headers.get("x-model-version") == str(candidate) else None


def test_blue_green_preview_then_switch(stack, model_zips):
    stable, candidate = _register(stack, model_zips, "v1", "v2")
    first = release(stack, MODEL, stable)
    assert first["state"] == "promoted", first["failure_reason"]
    wait_for_version(stack, models.OK_PAYLOAD, stable)

    plan = {"preview": {"header": "x-preview", "value": "yes"}, "auto_promote": False}
    with RequestStream(_invocations(stack), models.OK_PAYLOAD) as stream:
        stream.wait_for_requests(50)
        second = start_release(stack, MODEL, candidate, plan=plan)
        wait_for_release(stack, second["id"], states=("paused",))

        # The gateways apply the route with the preview within a poll interval
        # after the release pauses, so wait for the first preview answer.
        preview = wait_until(
            lambda: _preview_response(stack, candidate), 5, "the gateway to route preview requests to the candidate"
        )
        waiting = time.monotonic()
        stream.wait_for_more(50)
        before_switch = stream.versions_since(waiting)

        promoted = act(stack, second["id"], "promote", "preview looks right")
        wait_for_version(stack, models.OK_PAYLOAD, candidate, timeout=5)
        stream.wait_for_more(50)

    print(f"Requests during the blue/green switch: {dict(stream.statuses)}, by version: {dict(stream.versions)}")
    assert preview.headers["x-model-version"] == str(candidate)
    assert before_switch == Counter({str(stable): before_switch.total()})
    assert promoted["state"] == "promoted"
    assert stream.failures == 0, stream.errors[:5]

    old_server = ModelServer.objects.get(pk=first["candidate_server"])
    wait_until(lambda: ModelServer.objects.get(pk=old_server.pk).state == "stopped", 20, "the old server to stop after the scale-down delay")


def test_canary_four_steps_under_load(stack, model_zips):
    stable, candidate = _register(stack, model_zips, "v1", "v2")
    release(stack, MODEL, stable)
    wait_for_version(stack, models.OK_PAYLOAD, stable)

    plan = {
        "steps": [
            {"weight": 10}, {"analysis": {"window": 3}},
            {"weight": 25}, {"pause": {"duration": 2}},
            {"weight": 50}, {"pause": {"duration": 2}},
            {"weight": 75}, {"pause": {"duration": 2}},
        ],
    }
    analysis = {"metrics": [ERROR_RATE_CHECK], "min_requests": 5}
    with RequestStream(_invocations(stack), models.OK_PAYLOAD) as stream:
        stream.wait_for_requests(50)
        canary = start_release(stack, MODEL, candidate, strategy="canary", plan=plan, analysis=analysis)
        finished = wait_for_release(stack, canary["id"], timeout=90)
        wait_for_version(stack, models.OK_PAYLOAD, candidate, timeout=5)
        stream.wait_for_more(50)

    print(f"Requests during the canary: {dict(stream.statuses)}, by version: {dict(stream.versions)}")
    assert finished["state"] == "promoted", finished["failure_reason"]
    assert stream.failures == 0, stream.errors[:5]
    traffic = [event for event in events(stack, canary["id"]) if event["kind"] == "traffic"]
    assert [event["data"].get("canary_weight") for event in traffic] == [10.0, 25.0, 50.0, 75.0, None]
    assert [event["data"]["outcome"] for event in events(stack, canary["id"]) if event["kind"] == "analysis"] == ["passed"]


def test_failing_candidate_rolls_back(stack, model_zips):
    stable, flaky = _register(stack, model_zips, "v1", "flaky")
    release(stack, MODEL, stable)
    wait_for_version(stack, models.OK_PAYLOAD, stable)

    plan = {"steps": [{"weight": 50}, {"analysis": {"window": 4}}, {"weight": 100}]}
    analysis = {"metrics": [ERROR_RATE_CHECK], "min_requests": 10}
    with RequestStream(_invocations(stack), [models.OK_PAYLOAD, models.FAILING_PAYLOAD]) as stream:
        stream.wait_for_requests(50)
        canary = start_release(stack, MODEL, flaky, strategy="canary", plan=plan, analysis=analysis)
        finished = wait_for_release(stack, canary["id"], timeout=60)
        time.sleep(1.0)
        after_rollback = time.monotonic()
        stream.wait_for_more(100)

    print(f"Requests during the failing canary: {dict(stream.statuses)}, by version: {dict(stream.versions)}")
    assert finished["state"] == "failed"
    assert "error_rate" in finished["failure_reason"]
    assert stream.versions_since(after_rollback) == Counter({str(stable): stream.versions_since(after_rollback).total()})
    assert stream.failures_since(after_rollback) == 0


def test_abort_mid_canary_then_retry(stack, model_zips):
    stable, candidate = _register(stack, model_zips, "v1", "v2")
    endpoint = stack.api.post("/api/v1/endpoints/", json={"name": ENDPOINT, "environment": "development", "sticky_header": "x-user"})
    assert endpoint.status_code == 201, endpoint.text
    release(stack, MODEL, stable)
    wait_for_version(stack, models.OK_PAYLOAD, stable)

    canary = start_release(stack, MODEL, candidate, strategy="canary", plan={"steps": [{"weight": 50}, {"pause": {}}]})
    wait_for_release(stack, canary["id"], states=("paused",))
    time.sleep(1.0)
    sticky = {}
    for number in range(40):
        headers = {"x-user": f"user-{number}"}
        sticky[number] = {predict_with(stack, headers) for _ in range(3)}

    with RequestStream(_invocations(stack), models.OK_PAYLOAD) as stream:
        stream.wait_for_requests(50)
        aborted = act(stack, canary["id"], "abort", "numbers look off")
        time.sleep(1.0)
        after_abort = time.monotonic()
        stream.wait_for_more(100)

    assert all(len(versions) == 1 for versions in sticky.values()), sticky
    assert aborted["state"] == "aborted"
    assert stream.failures == 0, stream.errors[:5]
    assert stream.versions_since(after_abort) == Counter({str(stable): stream.versions_since(after_abort).total()})
    assert ModelServer.objects.get(pk=aborted["candidate_server"]).state == "ready"

    retried = act(stack, canary["id"], "retry", "fixed the dashboards")
    wait_for_release(stack, canary["id"], states=("paused",))
    promoted = act(stack, canary["id"], "promote-fully", "ship it")
    wait_for_version(stack, models.OK_PAYLOAD, candidate, timeout=5)
    assert (retried["attempt"], promoted["state"]) == (2, "promoted")
    assert promoted["candidate_server"] == aborted["candidate_server"]


def predict_with(stack, headers: dict) -> str:
    response = httpx.post(_invocations(stack), json=models.OK_PAYLOAD, headers=headers, timeout=10)
    return response.headers["x-model-version"]


def _release_locked(release_id: int) -> bool:
    """Return whether a controller step holds the release's row lock right now."""
    try:
        with transaction.atomic():
            Release.objects.select_for_update(nowait=True).get(pk=release_id)
    except DatabaseError:
        return True
    return False


def test_worker_killed_mid_step_release_completes(stack, model_zips):
    if connection.vendor != "postgresql":
        pytest.skip("finding the step in progress needs PostgreSQL's row locks; SQLite has none")
    stable, slow = _register(stack, model_zips, "v1", "slow")
    release(stack, MODEL, stable)
    wait_for_version(stack, models.OK_PAYLOAD, stable)
    revision_before = RouteRevision.objects.get().revision

    plan = {"steps": [{"weight": 20}, {"pause": {"duration": 1}}, {"weight": 60}, {"pause": {"duration": 1}}]}
    canary = start_release(stack, MODEL, slow, strategy="canary", plan=plan)

    # The smoke prediction on the slow input example keeps the deploying step
    # inside its transaction for 4 s: kill the worker in there.
    def in_smoke_prediction() -> bool:
        return Release.objects.get(pk=canary["id"]).state == "deploying" and _release_locked(canary["id"]) and (
            time.sleep(1.0) or _release_locked(canary["id"])
        )

    wait_until(in_smoke_prediction, 60, "the controller to hold the release during the smoke prediction", interval=0.05)
    stack.kill_worker()
    assert not Release.objects.get(pk=canary["id"]).events.filter(step_key="a1.candidate-ready").exists()
    assert Release.objects.get(pk=canary["id"]).state == "deploying"

    stack.start_worker("worker2")
    with RequestStream(_invocations(stack), models.OK_PAYLOAD) as stream:
        finished = wait_for_release(stack, canary["id"], timeout=90)
        stream.wait_for_more(20)

    assert finished["state"] == "promoted", finished["failure_reason"]
    assert stream.failures == 0, stream.errors[:5]
    step_keys = Counter(Release.objects.get(pk=canary["id"]).events.exclude(step_key=None).values_list("step_key", flat=True))
    expected = {
        "a1.building", "a1.deploying", "a1.candidate-ready", "a1.progressing", "a1.s0.r0.weight",
        "a1.s1.r0.pause-done", "a1.s2.r0.weight", "a1.s3.r0.pause-done", "a1.promoted", "a1.promoted.traffic",
    }
    assert set(step_keys) == expected
    assert max(step_keys.values()) == 1
    route_changes = RouteRevision.objects.get().revision - revision_before
    assert route_changes == _event_kinds(stack, canary["id"]).count("traffic") == 3
