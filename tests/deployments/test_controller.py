"""The release controller's steps against PostgreSQL: weights, pauses, analysis, deadlines, promotion, run tokens.

The servers are rows without processes; the controller only changes the route
table here, and the analysis reads counter reports written by the tests.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from deployments.models import ImageBuild, ModelServer, Release, RouteBackend, TrafficSample
from deployments.services import controller, routing

pytestmark = pytest.mark.django_db

ERROR_RATE = {"metric": "error_rate", "max": 0.05}
GATEWAY_STARTED = timezone.now() - timedelta(hours=1)
BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _age_step(release, seconds: float) -> None:
    Release.objects.filter(pk=release.pk).update(step_started_at=timezone.now() - timedelta(seconds=seconds))


def _split(release) -> dict[int, Decimal]:
    return dict(RouteBackend.objects.filter(endpoint=release.endpoint).values_list("server_id", "weight"))


def _report(server, *, at, requests, server_errors=0, latency=0.004, instance="gw:1"):
    """Store one cumulative counter report in which every request took `latency` seconds."""
    buckets = [[bound, requests if latency <= bound else 0] for bound in BOUNDS]
    TrafficSample.objects.create(
        instance=instance, gateway_started_at=GATEWAY_STARTED, endpoint=server.endpoint.name,
        server_id=server.pk, version=server.version.version, requests=requests, server_errors=server_errors,
        client_errors=0, latency_sum=requests * latency, latency_buckets=buckets, created_at=at,
    )


def _traffic(release, *, window: float, candidate_requests, candidate_errors=0, candidate_latency=0.004,
             stable_requests=1000, stable_latency=0.004):
    """Report the given traffic for candidate and stable over the last `window` seconds, and age the step to match."""
    now = timezone.now()
    start = now - timedelta(seconds=window)
    _age_step(release, window)
    for server, requests, errors, latency in (
        (release.candidate_server, candidate_requests, candidate_errors, candidate_latency),
        (release.stable_server, stable_requests, 0, stable_latency),
    ):
        _report(server, at=start - timedelta(seconds=0.5), requests=0, latency=latency)
        _report(server, at=now - timedelta(seconds=0.5), requests=requests, server_errors=errors, latency=latency)


def _advance(release):
    result = controller.advance(release.pk)
    release.refresh_from_db()
    return result


# Weight steps


def test_weight_step_sets_split(make_release):
    release = make_release(plan={"steps": [{"weight": 12.5}, {"pause": {}}]})
    _advance(release)
    assert _split(release) == {release.stable_server_id: Decimal("87.5"), release.candidate_server_id: Decimal("12.5")}


def test_weight_step_marks_candidate_role(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {}}]})
    _advance(release)
    role = RouteBackend.objects.get(server=release.candidate_server).role
    assert role == RouteBackend.Role.CANDIDATE


def test_weight_step_records_traffic_event(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {}}]})
    _advance(release)
    assert release.events.filter(kind="traffic", step_key="a1.s0.r0.weight").count() == 1


def test_weight_step_moves_to_next_step(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {}}]})
    _advance(release)
    assert (release.step_index, release.canary_weight) == (1, Decimal("10.0"))


def test_weight_zero_keeps_candidate_without_traffic(make_release):
    release = make_release(plan={"steps": [{"weight": 0}, {"pause": {}}]})
    _advance(release)
    assert _split(release)[release.candidate_server_id] == Decimal("0.0")


def test_weight_step_keeps_preview_route(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {}}], "preview": {"header": "x-preview", "value": "yes"}})
    _advance(release)
    preview = routing.route_table()["endpoints"]["churn"]["preview"]
    assert preview == {"header": "x-preview", "value": "yes", "backend": f"s{release.candidate_server_id}"}


# Run tokens


def test_advance_returns_next_token(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {}}]})
    delay, token = _advance(release)
    assert token == release.run_token


def test_outdated_token_does_nothing(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"weight": 20}, {"pause": {}}]})
    _, token = controller.advance(release.pk, release.run_token)
    controller.advance(release.pk, token - 1)
    release.refresh_from_db()
    assert release.step_index == 1


def test_redelivered_run_applies_step_once(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"weight": 20}, {"pause": {}}]})
    first_token = release.run_token
    controller.advance(release.pk, first_token)
    revision = routing.current_revision()
    controller.advance(release.pk, first_token)
    assert routing.current_revision() == revision


def test_paused_release_not_advanced(make_release):
    release = make_release(state=Release.State.PAUSED)
    assert _advance(release) is None


# Pause steps


def test_timed_pause_waits_remaining_time(make_release):
    release = make_release(plan={"steps": [{"pause": {"duration": 60}}]})
    _age_step(release, 20)
    delay, _ = _advance(release)
    assert 0 < delay <= 30


def test_timed_pause_continues_after_duration(make_release):
    release = make_release(plan={"steps": [{"pause": {"duration": 5}}, {"weight": 10}]})
    _age_step(release, 6)
    _advance(release)
    assert release.step_index == 1


def test_indefinite_pause_pauses_release(make_release):
    release = make_release(plan={"steps": [{"pause": {}}]})
    _advance(release)
    assert (release.state, release.pause_reason) == ("paused", "step")


# Analysis steps


def _analysed(make_release, metrics=(ERROR_RATE,), failure_limit=1, min_requests=50, **traffic):
    release = make_release(
        plan={"steps": [{"weight": 10}, {"analysis": {"window": 10}}, {"weight": 50}]},
        analysis={"metrics": list(metrics), "failure_limit": failure_limit, "min_requests": min_requests},
    )
    _advance(release)
    _traffic(release, window=10, **traffic)
    _advance(release)
    return release


def test_analysis_waits_for_window(make_release):
    release = make_release(plan={"steps": [{"analysis": {"window": 30}}]}, analysis={"metrics": [ERROR_RATE]})
    delay, _ = _advance(release)
    assert delay > 25


def test_analysis_passing_moves_on(make_release):
    release = _analysed(make_release, candidate_requests=100, candidate_errors=1)
    assert release.step_index == 2


def test_analysis_passing_records_stats(make_release):
    release = _analysed(make_release, candidate_requests=100, candidate_errors=1)
    event = release.events.get(kind="analysis")
    assert (event.data["outcome"], event.data["candidate"]["requests"]) == ("passed", 100)


def test_analysis_failing_at_limit_fails_release(make_release):
    release = _analysed(make_release, candidate_requests=100, candidate_errors=30)
    assert release.state == "failed"


def test_analysis_failing_at_limit_returns_traffic_to_stable(make_release):
    release = _analysed(make_release, candidate_requests=100, candidate_errors=30)
    assert _split(release) == {release.stable_server_id: Decimal("100.0")}


def test_analysis_failing_at_limit_stops_candidate(make_release):
    release = _analysed(make_release, candidate_requests=100, candidate_errors=30)
    release.candidate_server.refresh_from_db()
    assert release.candidate_server.stop_after is not None


def test_analysis_failure_reason_names_metric(make_release):
    release = _analysed(make_release, candidate_requests=100, candidate_errors=30)
    assert "error_rate 30.00 % is above the maximum 5.00 %" in release.failure_reason


def test_analysis_failing_below_limit_runs_again(make_release):
    release = _analysed(make_release, failure_limit=2, candidate_requests=100, candidate_errors=30)
    assert (release.state, release.step_index, release.step_attempt, release.failed_analyses) == ("progressing", 1, 1, 1)


def test_analysis_too_few_requests_pauses(make_release):
    release = _analysed(make_release, candidate_requests=10)
    assert (release.state, release.pause_reason) == ("paused", "inconclusive")


def test_analysis_relative_latency_fails_when_slower(make_release):
    check = {"metric": "latency_p95_ms", "max": 1.2, "relative_to": "stable"}
    release = _analysed(make_release, metrics=[check], candidate_requests=100, candidate_latency=0.02, stable_latency=0.004)
    assert release.state == "failed"


def test_analysis_relative_latency_passes_when_equal(make_release):
    check = {"metric": "latency_p95_ms", "max": 1.2, "relative_to": "stable"}
    release = _analysed(make_release, metrics=[check], candidate_requests=100)
    assert release.step_index == 2


def test_analysis_request_count_minimum_fails(make_release):
    check = {"metric": "request_count", "min": 500}
    release = _analysed(make_release, metrics=[check], candidate_requests=100)
    assert release.state == "failed"


# Promotion


def test_last_step_promotes(make_release):
    release = make_release(plan={"steps": [{"weight": 50}]})
    _advance(release)
    _advance(release)
    assert release.state == "promoted"


def test_promotion_sends_all_traffic_to_candidate(make_release):
    release = make_release(plan={"steps": [{"weight": 50}]})
    _advance(release)
    _advance(release)
    assert _split(release) == {release.candidate_server_id: Decimal("100.0")}


def test_promotion_makes_candidate_stable_role(make_release):
    release = make_release(plan={"steps": [{"weight": 50}]})
    _advance(release)
    _advance(release)
    assert RouteBackend.objects.get(server=release.candidate_server).role == RouteBackend.Role.STABLE


def test_promotion_schedules_stable_scale_down(make_release):
    release = make_release(plan={"steps": [{"weight": 50}], "scale_down_delay": 40})
    _advance(release)
    _advance(release)
    release.stable_server.refresh_from_db()
    remaining = (release.stable_server.stop_after - timezone.now()).total_seconds()
    assert 35 < remaining <= 40


def test_promotion_drops_preview_route(make_release):
    release = make_release(plan={"steps": [{"weight": 50}], "preview": {"header": "x-preview", "value": "1"}})
    _advance(release)
    _advance(release)
    assert routing.route_table()["endpoints"]["churn"]["preview"] is None


# Progress deadline


def test_deadline_fails_release(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {"duration": 5}}], "progress_deadline": 10})
    _advance(release)
    _age_step(release, 16)
    _advance(release)
    assert release.state == "failed"


def test_deadline_rolls_back_traffic(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {"duration": 5}}], "progress_deadline": 10})
    _advance(release)
    _age_step(release, 16)
    _advance(release)
    assert _split(release) == {release.stable_server_id: Decimal("100.0")}


def test_deadline_counts_after_planned_duration(make_release):
    release = make_release(plan={"steps": [{"weight": 10}, {"pause": {"duration": 30}}, {"pause": {}}], "progress_deadline": 10})
    _advance(release)
    _age_step(release, 31)
    _advance(release)
    assert release.state == "progressing"


def test_deadline_can_pause(make_release):
    plan = {"steps": [{"weight": 10}, {"pause": {"duration": 5}}], "progress_deadline": 10, "on_deadline": "pause"}
    release = make_release(plan=plan)
    _advance(release)
    _age_step(release, 16)
    _advance(release)
    assert (release.state, release.pause_reason) == ("paused", "deadline")


def test_deadline_pause_keeps_traffic(make_release):
    plan = {"steps": [{"weight": 10}, {"pause": {"duration": 5}}], "progress_deadline": 10, "on_deadline": "pause"}
    release = make_release(plan=plan)
    _advance(release)
    _age_step(release, 16)
    _advance(release)
    assert _split(release)[release.candidate_server_id] == Decimal("10.0")


def test_build_past_deadline_fails_release(make_release):
    release = make_release(state=Release.State.BUILDING, plan={"steps": [{"weight": 10}], "progress_deadline": 30})
    ModelServer.objects.filter(pk=release.candidate_server_id).update(state="pending")
    _age_step(release, 31)
    _advance(release)
    assert release.failure_reason == "Preparing server %d did not finish within its progress deadline of 30 s" % release.candidate_server_id


# Image builds (runtimes that prepare in a build task)


@pytest.fixture
def docker_release(make_release, settings):
    """A release in building whose candidate is a pending server on the docker runtime; no engine is called."""
    settings.DOCKER_HOST = "unix:///nonexistent/engine.sock"
    settings.PORTAL_DOCKER_WHEELHOUSE = "/nonexistent/wheelhouse"
    release = make_release(state=Release.State.BUILDING, plan={"steps": [{"weight": 10}], "progress_deadline": 30})
    ModelServer.objects.filter(pk=release.candidate_server_id).update(state="pending", runtime="docker")
    release.refresh_from_db()
    return release


def _build_of(release):
    return ImageBuild.objects.filter(server=release.candidate_server_id).first()


def test_build_step_queues_image_build(docker_release):
    _advance(docker_release)
    assert _build_of(docker_release).state == ImageBuild.State.QUEUED


def test_build_step_polls_while_build_runs(docker_release):
    _advance(docker_release)
    ImageBuild.objects.update(state=ImageBuild.State.RUNNING, heartbeat_at=timezone.now())
    delay, _ = _advance(docker_release)
    assert (docker_release.state, delay) == (Release.State.BUILDING, controller.BUILD_POLL_SECONDS)


def test_build_step_queues_one_build_per_attempt(docker_release):
    _advance(docker_release)
    _advance(docker_release)
    assert ImageBuild.objects.count() == 1


def test_failed_build_fails_release(docker_release):
    _advance(docker_release)
    ImageBuild.objects.update(state=ImageBuild.State.FAILED, failure_reason="step 4/9 (RUN pip install) failed")
    _advance(docker_release)
    assert docker_release.failure_reason == f"Image build {_build_of(docker_release).pk} failed: step 4/9 (RUN pip install) failed"


def test_stale_build_fails_release(docker_release, settings):
    settings.PORTAL_PROGRESS_DEADLINE = 1
    settings.PORTAL_DOCKER_BUILD_TIMEOUT = 10
    _advance(docker_release)
    ImageBuild.objects.update(state=ImageBuild.State.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=71))
    _advance(docker_release)
    assert docker_release.state == Release.State.FAILED


def test_failed_build_of_earlier_attempt_is_built_again(docker_release):
    _advance(docker_release)
    ImageBuild.objects.update(state=ImageBuild.State.FAILED, created_at=timezone.now() - timedelta(minutes=5))
    _advance(docker_release)
    assert ImageBuild.objects.filter(state=ImageBuild.State.QUEUED).count() == 1


def test_build_step_with_running_candidate_checks_it_again(make_release):
    release = make_release(state=Release.State.BUILDING)
    ModelServer.objects.filter(pk=release.candidate_server_id).update(state="starting")
    _advance(release)
    assert release.events.get(to_state="deploying").message.startswith("Checking the running server")
