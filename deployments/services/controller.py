"""The release controller: one idempotent step of a release per call.

A Celery task calls `advance` with the release id and the run token it was
scheduled with. `advance` locks the release row and performs the step that the
release's state and plan call for. It records the step, increments the run
token and returns the delay until the next run with the new token, or None
when the release needs no further run (it is final, or paused for a person).

A worker can die at any point. If it dies before the commit, the step's
database changes roll back and the next run performs the step again, and the
runtime adopts a server that was already started. If it dies after the
commit, the broker may deliver the same message again, but it carries an old
token and is dropped. Either way a
step's route change and event are stored once. Controller events carry a
`step_key` as a second guard (see ReleaseEvent).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import ModelServer, Release, RouteBackend
from deployments.runtimes import RuntimeFailure
from deployments.services import analysis, builds, plans, routing, rollout, servers
from deployments.services.events import change_state, record_event
from deployments.services.releases import get_release_for_update

logger = logging.getLogger("deployments.controller")

State = Release.State

# A run scheduled further ahead re-checks and schedules again. The broker
# delivers a countdown task at once and the worker keeps it unacknowledged
# until it is due, so a long countdown would outlast the visibility timeout.
# Short countdowns also let the stall sweep notice a lost chain quickly.
MAX_DELAY_SECONDS = 30.0

# How often a release in building checks on its image build.
BUILD_POLL_SECONDS = 1.0


def advance(release_id: int, token: int | None = None) -> tuple[float, int] | None:
    """Run the release's next step and return (seconds until the next run, its token), or None."""
    with transaction.atomic():
        release = get_release_for_update(release_id)
        if token is not None and token != release.run_token:
            logger.info(
                "Release %s: dropping an outdated controller run (token %s, current %s)",
                release.pk, token, release.run_token,
            )
            return None
        step = _STEPS.get(release.state)
        if step is None:
            return None

        try:
            delay = step(release)
        except RuntimeFailure as exc:
            delay = fail(release, str(exc))

        if delay is None:
            release.next_run_at = None
            release.save(update_fields=["next_run_at", "updated_at"])
            return None

        delay = min(max(delay, 0.0), MAX_DELAY_SECONDS)
        release.run_token += 1
        release.next_run_at = timezone.now() + timedelta(seconds=delay)
        release.save(update_fields=["run_token", "next_run_at", "updated_at"])
        return delay, release.run_token


def step_key(release: Release, name: str, *, in_step: bool = False) -> str:
    """Build the key that makes a controller event unique per release run, step and step attempt."""
    if in_step:
        return f"a{release.attempt}.s{release.step_index}.r{release.step_attempt}.{name}"
    return f"a{release.attempt}.{name}"


# Starting the candidate


def _start(release: Release) -> float:
    """Create the candidate's server row and move to building."""
    if release.candidate_server is None:
        release.candidate_server = servers.create_server(release.endpoint, release.version, release.plan.get("resources"))
        release.save(update_fields=["candidate_server"])

    change_state(
        release,
        State.BUILDING,
        f"Preparing v{release.version.version} on the {release.candidate_server.runtime} runtime "
        f"(server {release.candidate_server.pk})",
        step_key=step_key(release, "building"),
        started_at=release.started_at or timezone.now(),
        step_started_at=timezone.now(),
    )
    return 0


def _build(release: Release) -> float | None:
    """Prepare and start the candidate server, then wait for it in deploying.

    Runtimes that build images prepare in a build task of their own, which
    this step queues and then polls, so the release row is free meanwhile.
    Other runtimes prepare here. A run that outlasts the task's time limit
    rolls back and runs again, so the progress deadline is what ends a
    preparation that never finishes.
    """
    server = release.candidate_server
    waited = (timezone.now() - release.step_started_at).total_seconds()
    # A retried release's candidate that still runs is checked again, not started.
    started_here = server.state == ModelServer.State.PENDING

    if server.state == ModelServer.State.PENDING and servers.builds_in_task(server):
        build = builds.latest_build(server)
        if build is None or (build.state == build.State.FAILED and build.created_at < release.step_started_at):
            build = builds.request_build(server)
            record_event(
                release,
                "build",
                f"Image build {build.pk} queued for server {server.pk} (v{release.version.version})",
                data={"build": build.pk},
                step_key=step_key(release, f"build-{build.pk}"),
            )
            return BUILD_POLL_SECONDS
        if build.state == build.State.FAILED:
            return fail(release, f"Image build {build.pk} failed: {build.failure_reason}")
        if not build.is_final:
            if builds.is_stale(build) or waited > builds.build_wait_limit():
                return fail(release, f"Image build {build.pk} did not finish within {builds.build_wait_limit():g} s")
            return BUILD_POLL_SECONDS
        servers.start_server(server, prepared=build.prepared)
    elif server.state == ModelServer.State.PENDING:
        if waited > _deadline(release):
            return _deadline_passed(release, f"Preparing server {server.pk} did not finish", "build-deadline")
        servers.start_server(server)

    if started_here:
        message = f"Started server {server.pk} for v{release.version.version} at {server.url}; waiting until it is ready"
    else:
        message = f"Checking the running server {server.pk} for v{release.version.version} at {server.url} again"
    change_state(
        release,
        State.DEPLOYING,
        message,
        step_key=step_key(release, "deploying"),
        step_started_at=timezone.now(),
    )
    return settings.PORTAL_CONTROLLER_INTERVAL


def _deploy(release: Release) -> float | None:
    """Wait until the candidate is ready and passed its smoke prediction, then start the plan's steps."""
    server = release.candidate_server
    if server.state == ModelServer.State.STARTING:
        health = servers.check_server(server)
        if server.state == ModelServer.State.FAILED:
            return fail(release, f"Server {server.pk} failed: {server.failure_reason}")
        if not health.ready:
            return _wait_for_ready(release, health.detail)

    if server.state != ModelServer.State.READY:
        return fail(release, f"Server {server.pk} is {server.state}: {server.failure_reason or 'not ready'}")

    record_event(
        release,
        "server",
        f"Server {server.pk} for v{release.version.version} is ready and passed its smoke prediction",
        step_key=step_key(release, "candidate-ready"),
    )

    steps = release.plan.get("steps") or []
    if release.stable_server is None:
        return _promote(release, "no earlier version serves the endpoint, so the candidate takes all traffic at once")
    if not steps:
        return _promote(release, "blue/green switch")

    revision = None
    preview = rollout.preview_route(release)
    if preview is not None:
        stable = release.stable_server
        revision = routing.set_traffic(
            release.endpoint,
            {stable: 100, server: 0},
            roles={stable.pk: RouteBackend.Role.STABLE, server.pk: RouteBackend.Role.CANDIDATE},
            preview=preview,
        )
    change_state(
        release,
        State.PROGRESSING,
        _steps_message(release, steps, preview, revision),
        data={"revision": revision} if revision else None,
        step_key=step_key(release, "progressing"),
        step_index=0,
        step_attempt=0,
        step_started_at=timezone.now(),
    )
    return 0


def _wait_for_ready(release: Release, detail: str) -> float | None:
    waited = (timezone.now() - release.step_started_at).total_seconds()
    if waited > settings.PORTAL_SERVER_READY_TIMEOUT:
        return fail(
            release,
            f"Server {release.candidate_server_id} was not ready after "
            f"{settings.PORTAL_SERVER_READY_TIMEOUT:.0f} s ({detail}).",
        )
    if waited > _deadline(release):
        return _deadline_passed(release, f"Server {release.candidate_server_id} was not ready ({detail})", "deploy-deadline")
    return settings.PORTAL_CONTROLLER_INTERVAL


def _steps_message(release: Release, steps: list[dict], preview, revision: int | None) -> str:
    described = ", ".join(plans.describe_step(step) for step in steps)
    message = f"Running {len(steps)} steps before promotion: {described}"
    if preview is not None:
        message += f". Requests with {preview.header}: {preview.value} reach v{release.version.version} (route revision {revision})"
    return message


# The plan's steps


def _progress(release: Release) -> float | None:
    """Perform or check the current step, or promote after the last one."""
    steps = release.plan.get("steps") or []
    if release.step_index >= len(steps):
        return _promote(release, f"all {len(steps)} steps done")

    step = steps[release.step_index]
    elapsed = (timezone.now() - release.step_started_at).total_seconds()
    if elapsed > plans.planned_seconds(step) + _deadline(release):
        return _deadline_passed(release, f"{_step_label(release)} ({plans.describe_step(step)}) did not finish")

    kind = plans.step_kind(step)
    if kind == "weight":
        return _weight_step(release, Decimal(str(step["weight"])))
    if kind == "pause":
        return _pause_step(release, step["pause"].get("duration"))
    return _analysis_step(release, step["analysis"])


def _weight_step(release: Release, weight: Decimal) -> float:
    revision = rollout.set_canary_weight(release, weight)
    record_event(
        release,
        "traffic",
        f"{_step_label(release)}: {weight}% of traffic to v{release.version.version}, "
        f"{Decimal(100) - weight}% to v{release.stable_server.version.version} (route revision {revision})",
        data={"revision": revision, "step": release.step_index, "canary_weight": float(weight)},
        step_key=step_key(release, "weight", in_step=True),
    )
    _next_step(release)
    return 0


def _pause_step(release: Release, duration: float | None) -> float | None:
    if duration is None:
        change_state(
            release,
            State.PAUSED,
            f"{_step_label(release)}: paused at {release.canary_weight}% until a person promotes the release",
            kind="pause",
            step_key=step_key(release, "paused", in_step=True),
            pause_reason=Release.PauseReason.STEP,
            paused_at=timezone.now(),
        )
        return None

    remaining = duration - (timezone.now() - release.step_started_at).total_seconds()
    if remaining > 0:
        return remaining

    record_event(
        release,
        "step",
        f"{_step_label(release)}: paused {duration:g} s at {release.canary_weight}%",
        step_key=step_key(release, "pause-done", in_step=True),
    )
    _next_step(release)
    return 0


def _analysis_step(release: Release, spec: dict) -> float | None:
    now = timezone.now()
    remaining = spec["window"] - (now - release.step_started_at).total_seconds()
    if remaining > 0:
        return remaining

    result = analysis.run(release, spec, release.step_started_at, now)
    label = f"{_step_label(release)}: analysis at {release.canary_weight}% {result.summary}"
    key = step_key(release, "analysis", in_step=True)
    data = {"step": release.step_index, **result.as_dict()}

    if result.outcome == analysis.PASSED:
        record_event(release, "analysis", label, data=data, step_key=key)
        _next_step(release)
        return 0

    if result.outcome == analysis.INCONCLUSIVE:
        change_state(
            release,
            State.PAUSED,
            f"{label}. Paused until a person resumes (analyse again), promotes (skip the analysis) or aborts",
            kind="analysis",
            data=data,
            step_key=key,
            pause_reason=Release.PauseReason.INCONCLUSIVE,
            paused_at=now,
        )
        return None

    release.failed_analyses += 1
    release.save(update_fields=["failed_analyses", "updated_at"])
    limit = spec["failure_limit"]
    counted = f"failed analysis {release.failed_analyses} of at most {limit}"
    record_event(release, "analysis", f"{label} ({counted})", data=data, step_key=key)
    if release.failed_analyses >= limit:
        return fail(release, f"{_step_label(release)}: {result.summary}. This was {counted}, so the release rolled back")

    release.step_attempt += 1
    release.step_started_at = now
    release.save(update_fields=["step_attempt", "step_started_at", "updated_at"])
    return spec["window"]


def _next_step(release: Release) -> None:
    release.step_index += 1
    release.step_attempt = 0
    release.step_started_at = timezone.now()
    release.save(update_fields=["step_index", "step_attempt", "step_started_at", "updated_at"])


def _step_label(release: Release) -> str:
    total = len(release.plan.get("steps") or [])
    return f"Step {release.step_index + 1} of {total}"


def _promote(release: Release, why: str) -> None:
    candidate = release.candidate_server
    rollout.promote_candidate(
        release,
        f"v{release.version.version} is live on {release.endpoint.name} ({why}); server {candidate.pk} takes all traffic",
        step_key=step_key(release, "promoted"),
    )
    return None


# Failures


def _deadline(release: Release) -> float:
    """Return the seconds a step may take beyond its planned duration."""
    return release.plan.get("progress_deadline", settings.PORTAL_PROGRESS_DEADLINE)


def _deadline_passed(release: Release, what: str, key_name: str = "deadline") -> float | None:
    """Fail and roll back, or pause, as the plan's on_deadline sets."""
    reason = f"{what} within its progress deadline of {_deadline(release):g} s"
    if release.plan.get("on_deadline") == "pause":
        change_state(
            release,
            State.PAUSED,
            f"{reason}. Paused until a person resumes (restart the step), promotes or aborts",
            kind="deadline",
            step_key=step_key(release, key_name, in_step=True),
            pause_reason=Release.PauseReason.DEADLINE,
            paused_at=timezone.now(),
        )
        return None
    return fail(release, reason)


def fail(release: Release, reason: str) -> None:
    """Mark the release failed: all traffic back to the stable version, and the candidate stopped.

    The candidate stops once every gateway has stopped sending it requests.
    """
    revision = rollout.return_to_stable(release)
    if revision is not None:
        stable = release.stable_version
        record_event(
            release,
            "traffic",
            f"Rolled back: all traffic to v{stable.version if stable else '?'} (route revision {revision})",
            data={"revision": revision},
            step_key=step_key(release, "rolled-back"),
        )

    candidate = release.candidate_server
    if candidate is not None and candidate.state not in (ModelServer.State.STOPPED, ModelServer.State.STOPPING):
        rollout.schedule_scale_down(candidate, 0)

    change_state(
        release,
        State.FAILED,
        reason,
        kind="failed",
        step_key=step_key(release, "failed"),
        failure_reason=reason,
        finished_at=timezone.now(),
    )
    logger.warning("Release %s (endpoint %s) failed: %s", release.pk, release.endpoint.name, reason)
    return None


_STEPS = {
    State.APPROVED: _start,
    State.BUILDING: _build,
    State.DEPLOYING: _deploy,
    State.PROGRESSING: _progress,
}
