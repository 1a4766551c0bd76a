"""Creating releases and acting on them; the API and the UI both call these functions.

Each action (pause, resume, promote, promote_fully, abort, rollback, retry)
takes the release id, the acting user (None for the system) and a free-text
reason. Abort and rollback require a non-empty reason and raise InvalidInput
on field "reason" without one, because they end a release or move its traffic
back. Each action locks the release, checks that the action makes sense in the
release's state, changes the state, records one event with the actor, time and
reason, and returns the release. In a state where the action makes no sense it
raises Conflict, which the API turns into 409, with the current state in
`details["state"]`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from deployments.models import Endpoint, Environment, ModelServer, Release, RouteBackend
from deployments.services import environments, plans, rollout, routing
from deployments.services.events import change_state, record_event
from deployments.services.routing import current_stable_server
from mlops_portal.errors import Conflict, InvalidInput, NotFound
from registry.models import ModelVersion

logger = logging.getLogger("deployments.releases")

State = Release.State

__all__ = [
    "abort", "create_release", "current_stable_server", "get_or_create_endpoint", "get_release_for_update",
    "pause", "promote", "promote_fully", "resume", "retry", "rollback", "rollback_endpoint", "schedule_controller",
    "was_withdrawn_before_approval",
]


def get_or_create_endpoint(name: str, environment: Environment | None, actor=None) -> Endpoint:
    endpoint = Endpoint.objects.filter(name=name).select_related("environment").first()
    if endpoint is not None:
        if environment is not None and endpoint.environment_id != environment.pk:
            raise InvalidInput(
                f"Endpoint {name!r} belongs to environment {endpoint.environment.name!r}, not {environment.name!r}.",
                field="environment",
            )
        return endpoint

    if environment is None:
        raise InvalidInput(f"Endpoint {name!r} does not exist yet; give an environment to create it in.", field="environment")
    endpoint = Endpoint.objects.create(name=name, environment=environment, created_by=actor)
    logger.info("Created endpoint %s in environment %s", endpoint.name, environment.name)
    return endpoint


def create_release(
    endpoint: Endpoint,
    version: ModelVersion,
    *,
    strategy: str = Release.Strategy.BLUE_GREEN,
    plan: dict | None = None,
    analysis: dict | None = None,
    actor=None,
) -> Release:
    """Create a release of `version` to `endpoint`; it starts at once unless the environment needs approval.

    The plan and analysis are checked here (see deployments.services.plans), so
    a bad step is rejected before anything starts.
    """
    _check_version_deployable(version)
    plan, analysis = plans.normalize(strategy, plan, analysis)
    environments.check_resources_supported(endpoint.environment.runtime, plan.get("resources", {}), "plan.resources")

    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update(of=("self",)).select_related("environment").get(pk=endpoint.pk)
        open_release = endpoint.releases.filter(state__in=Release.OPEN_STATES).first()
        if open_release is not None:
            raise Conflict(
                f"Endpoint {endpoint.name} already has release {open_release.pk} in state {open_release.state}; "
                "wait for it to finish, or abort it.",
                field="endpoint",
                details={"release": open_release.pk, "state": open_release.state},
            )

        stable = current_stable_server(endpoint)
        if stable is not None and stable.version_id == version.pk and stable.state == ModelServer.State.READY:
            raise Conflict(
                f"{version} already serves endpoint {endpoint.name}.",
                field="version",
                details={"server": stable.pk},
            )

        needs_approval = endpoint.environment.requires_approval
        release = Release.objects.create(
            endpoint=endpoint,
            version=version,
            stable_version=stable.version if stable else None,
            stable_server=stable,
            strategy=strategy,
            plan=plan,
            analysis=analysis,
            state=State.AWAITING_APPROVAL if needs_approval else State.APPROVED,
            requested_by=actor,
        )
        record_event(
            release,
            "created",
            f"{actor or 'system'} requested {release.get_strategy_display()} release of {version} to {endpoint.name}",
            actor=actor,
            to_state=release.state,
        )
        _stop_leftover_servers(endpoint)
        if not needs_approval:
            schedule_controller(release)

    return release


def _check_version_deployable(version: ModelVersion) -> None:
    if version.status == ModelVersion.Status.FAILED:
        raise InvalidInput(
            f"{version} failed its load check ({version.status_reason}); register a version that loads.",
            field="version",
        )
    if version.archived:
        raise InvalidInput(f"{version} is archived; unarchive it or choose another version.", field="version")


def _stop_leftover_servers(endpoint: Endpoint) -> None:
    """Stop servers without traffic that earlier releases left running, such as an aborted candidate."""
    leftovers = (
        endpoint.servers.filter(state__in=[ModelServer.State.STARTING, ModelServer.State.READY])
        .filter(Q(stop_after__isnull=True) | Q(stop_after__gt=timezone.now()))
        .exclude(backends__weight__gt=0)
        .select_related("endpoint")
    )
    for server in leftovers:
        rollout.schedule_scale_down(server, 0)


def schedule_controller(release: Release, countdown: float = 0) -> None:
    """Start a new chain of controller runs for a locked release, ending any older chain."""
    from deployments.tasks import advance_release

    release.run_token += 1
    release.next_run_at = timezone.now() + timedelta(seconds=countdown)
    release.save(update_fields=["run_token", "next_run_at", "updated_at"])

    token = release.run_token
    transaction.on_commit(lambda: advance_release.apply_async((release.pk, token), countdown=countdown))


def _stop_controller(release: Release) -> None:
    """End the release's chain of controller runs, because a queued run then finds an old token and does nothing."""
    release.run_token += 1
    release.next_run_at = None
    release.save(update_fields=["run_token", "next_run_at", "updated_at"])


def get_release_for_update(release_id: int) -> Release:
    release = (
        Release.objects.select_for_update(of=("self",))
        .select_related(
            "endpoint__environment", "version__model", "stable_version__model",
            "candidate_server__version", "stable_server__version",
        )
        .filter(pk=release_id)
        .first()
    )
    if release is None:
        raise NotFound(f"Release {release_id} does not exist.")
    return release


# Actions


def pause(release_id: int, *, actor=None, reason: str = "") -> Release:
    """Hold a progressing release at its current step and traffic split until resumed or promoted."""
    with transaction.atomic():
        release = _locked_in(release_id, "paused", (State.PROGRESSING,))
        _stop_controller(release)
        change_state(
            release,
            State.PAUSED,
            _action_message(actor, f"paused the release at {_position(release)}", reason),
            actor=actor,
            kind="pause",
            data=_action_data(reason),
            pause_reason=Release.PauseReason.MANUAL,
            paused_at=timezone.now(),
        )
    return release


def resume(release_id: int, *, actor=None, reason: str = "") -> Release:
    """Continue a paused release.

    What continues depends on why it paused. A timed pause step keeps its
    remaining time, and a step that pauses until promoted counts as done. An
    analysis runs again over a new window, and a step whose progress deadline
    passed starts again.
    """
    with transaction.atomic():
        release = _locked_in(release_id, "resumed", (State.PAUSED,))
        now = timezone.now()
        step = _current_step(release)
        fields: dict = {"pause_reason": "", "paused_at": None}
        to_state = State.PROGRESSING

        if release.candidate_server is None or release.candidate_server.state != ModelServer.State.READY:
            to_state = _state_for_candidate(release.candidate_server)
            fields.update(step_started_at=now, step_attempt=release.step_attempt + 1)
            what = "resumed starting the candidate server"
        elif release.pause_reason == Release.PauseReason.STEP:
            fields.update(step_index=release.step_index + 1, step_attempt=0, step_started_at=now)
            what = f"resumed the release after {_position(release)}"
        elif release.pause_reason == Release.PauseReason.MANUAL and step and plans.step_kind(step) != "analysis":
            fields.update(step_started_at=release.step_started_at + (now - release.paused_at))
            what = f"resumed the release at {_position(release)}"
        else:
            fields.update(step_started_at=now, step_attempt=release.step_attempt + 1)
            what = f"resumed the release, starting {_position(release)} again"

        change_state(
            release, to_state, _action_message(actor, what, reason),
            actor=actor, kind="resume", data=_action_data(reason), **fields,
        )
        schedule_controller(release)
    return release


def promote(release_id: int, *, actor=None, reason: str = "") -> Release:
    """End the current pause or analysis step and continue with the next step.

    A blue/green release has no traffic steps, so promoting it switches all
    traffic to the candidate, as promote_fully does.
    """
    with transaction.atomic():
        release = _locked_in(release_id, "promoted", (State.PROGRESSING, State.PAUSED))
        _require_ready_candidate(release, "promoted")
        if release.strategy == Release.Strategy.BLUE_GREEN:
            return _promote_fully(release, actor, reason)

        step = _current_step(release)
        fields: dict = {"pause_reason": "", "paused_at": None}
        if step is not None and plans.step_kind(step) in ("pause", "analysis"):
            what = f"promoted the release past {_position(release)}"
            fields.update(step_index=release.step_index + 1, step_attempt=0, step_started_at=timezone.now())
        else:
            what = f"promoted the release at {_position(release)}"

        change_state(
            release, State.PROGRESSING, _action_message(actor, what, reason),
            actor=actor, kind="promote", data=_action_data(reason), **fields,
        )
        schedule_controller(release)
    return release


def promote_fully(release_id: int, *, actor=None, reason: str = "") -> Release:
    """Skip the remaining steps: all traffic to the candidate in one route change."""
    with transaction.atomic():
        release = _locked_in(release_id, "promoted fully", (State.PROGRESSING, State.PAUSED))
        _require_ready_candidate(release, "promoted fully")
        return _promote_fully(release, actor, reason)


def _promote_fully(release: Release, actor, reason: str) -> Release:
    _stop_controller(release)
    rollout.promote_candidate(
        release,
        _action_message(actor, f"promoted v{release.version.version} fully at {_position(release)}; it takes all traffic", reason),
        actor=actor,
        kind="promote_fully",
        data=_action_data(reason),
        pause_reason="",
        paused_at=None,
    )
    return release


def abort(release_id: int, *, actor=None, reason: str) -> Release:
    """Send all traffic back to the stable version at once and end the release.

    A release that has not started (awaiting approval, or approved without a
    candidate server) ends without a route change, which withdraws it.

    The candidate server keeps running for inspection (its logs, direct
    requests) for PORTAL_ABORTED_CANDIDATE_RETENTION seconds, or until the
    endpoint's next release starts. A retry within that time uses it again.
    """
    reason = _required_reason(reason, f"abort release {release_id}", "why the release ended")
    with transaction.atomic():
        release = _locked_in(release_id, "aborted", (State.AWAITING_APPROVAL, *Release.ACTIVE_STATES))
        _stop_controller(release)
        if release.can_be_withdrawn:
            return _withdraw(release, actor, reason)

        revision = rollout.return_to_stable(release)
        inspection_note = ""
        candidate = release.candidate_server
        if candidate is not None and candidate.state not in (ModelServer.State.STOPPING, ModelServer.State.STOPPED):
            retention = settings.PORTAL_ABORTED_CANDIDATE_RETENTION
            rollout.schedule_scale_down(candidate, retention)
            inspection_note = f"; server {candidate.pk} keeps running for inspection for {retention / 60:g} min"
        traffic = f"all traffic back to v{release.stable_version.version} (route revision {revision})" if revision else "the candidate had no traffic"
        change_state(
            release,
            State.ABORTED,
            _action_message(actor, f"aborted the release at {_position(release)}: {traffic}{inspection_note}", reason),
            actor=actor,
            kind="abort",
            data={**_action_data(reason), "revision": revision},
            finished_at=timezone.now(),
            pause_reason="",
            paused_at=None,
        )
    return release


def rollback(release_id: int, *, actor=None, reason: str) -> Release:
    """Send all traffic back to the release's stable version after it was promoted.

    When the stable server still runs (inside the scale-down delay) this is one
    route change. When it was already stopped, a new blue/green release starts
    the stable version again and switches to it once it is ready.
    """
    reason = _required_reason(reason, f"roll back release {release_id}", "why traffic went back to the earlier version")
    with transaction.atomic():
        release = _locked_in(release_id, "rolled back", (State.PROMOTED,))
        if release.stable_version is None:
            raise Conflict(
                f"Release {release.pk} replaced no earlier version, so there is nothing to roll back to.",
                details={"state": release.state},
            )

        newer = release.endpoint.releases.filter(created_at__gt=release.created_at).exclude(state=State.REJECTED).first()
        if newer is not None:
            raise Conflict(
                f"Endpoint {release.endpoint.name} has a newer release ({newer.pk}). Roll back that one.",
                details={"state": release.state, "release": newer.pk},
            )

        # Locking the stable server keeps the scale-down from stopping it
        # between this check and the route change.
        stable = ModelServer.objects.select_for_update().filter(pk=release.stable_server_id).first()
        if stable is not None and stable.state == ModelServer.State.READY:
            revision = _switch_back(release, stable)
            change_state(
                release,
                State.ROLLED_BACK,
                _action_message(actor, f"rolled back to v{release.stable_version.version} (route revision {revision})", reason),
                actor=actor,
                kind="rollback",
                data={**_action_data(reason), "revision": revision},
            )
            return release

        restart = _restart_stable(release, actor, reason)
        change_state(
            release,
            State.ROLLED_BACK,
            _action_message(
                actor,
                f"rolled back to v{release.stable_version.version}; its server was stopped, "
                f"so release {restart.pk} starts it again",
                reason,
            ),
            actor=actor,
            kind="rollback",
            data={**_action_data(reason), "restart_release": restart.pk},
        )
        return release


def _withdraw(release: Release, actor, reason: str) -> Release:
    change_state(
        release,
        State.ABORTED,
        _action_message(actor, f"withdrew the release while it was {_state_name(release.state)}; traffic is unchanged", reason),
        actor=actor,
        kind="abort",
        data={**_action_data(reason), "withdrawn": True},
        finished_at=timezone.now(),
    )
    return release


def was_withdrawn_before_approval(release: Release) -> bool:
    """Return whether the release was aborted while it awaited approval, so no one ever approved it."""
    return release.events.filter(kind="abort", from_state=State.AWAITING_APPROVAL).exists()


def _switch_back(release: Release, stable: ModelServer) -> int:
    revision = rollout.return_to_stable(release)
    if revision is None:
        # The candidate is already out of the table, but the stable version still gets a route change.
        revision = routing.set_traffic(release.endpoint, {stable: 100}, roles={stable.pk: RouteBackend.Role.STABLE})

    candidate = release.candidate_server
    if candidate is not None and candidate.is_running:
        rollout.schedule_scale_down(candidate, rollout.scale_down_delay(release))
    return revision


def _restart_stable(release: Release, actor, reason: str) -> Release:
    plan = {**plans.default_plan(), "rollback_of": release.pk}
    restart = Release.objects.create(
        endpoint=release.endpoint,
        version=release.stable_version,
        stable_version=release.version,
        stable_server=release.candidate_server,
        strategy=Release.Strategy.BLUE_GREEN,
        plan=plan,
        state=State.APPROVED,
        requested_by=actor,
    )
    reason_text = f": {reason}" if reason else ""
    record_event(restart, "created", f"Rollback of release {release.pk}{reason_text}", actor=actor, to_state=State.APPROVED)
    schedule_controller(restart)
    return restart


def retry(release_id: int, *, actor=None, reason: str = "") -> Release:
    """Run a failed or aborted release again from its first step, as its next attempt.

    A candidate server that still runs and is ready (an aborted release's) is
    used again, and otherwise a new one starts.
    """
    with transaction.atomic():
        release = _locked_in(release_id, "retried", (State.FAILED, State.ABORTED))
        if was_withdrawn_before_approval(release):
            raise Conflict(
                f"Release {release.pk} was withdrawn before anyone approved it, so retrying it would skip the approval. "
                "Create a new release instead.",
                details={"state": release.state},
            )
        endpoint = Endpoint.objects.select_for_update().get(pk=release.endpoint_id)

        newer = endpoint.releases.filter(created_at__gt=release.created_at).exclude(state=State.REJECTED).first()
        if newer is not None:
            raise Conflict(
                f"Endpoint {endpoint.name} has a newer release ({newer.pk}, {newer.state}). Create a new release instead.",
                details={"state": release.state, "release": newer.pk},
            )
        open_release = endpoint.releases.filter(state__in=Release.OPEN_STATES).first()
        if open_release is not None:
            raise Conflict(
                f"Endpoint {endpoint.name} already has release {open_release.pk} in state {open_release.state}.",
                details={"state": release.state, "release": open_release.pk},
            )

        stable = current_stable_server(endpoint)
        if stable is not None and stable.version_id == release.version_id:
            raise Conflict(
                f"{release.version} already serves endpoint {endpoint.name}, so there is nothing to retry.",
                details={"state": release.state},
            )

        candidate = release.candidate_server
        # An aborted candidate waits for its scale-down time, which a retry cancels.
        reused = (
            candidate is not None
            and candidate.state == ModelServer.State.READY
            and (candidate.stop_after is None or candidate.stop_after > timezone.now())
        )
        if reused:
            # Checked again (health and smoke prediction) before it gets traffic,
            # since its process may have died while the release was aborted.
            candidate.state = ModelServer.State.STARTING
            candidate.stop_after = None
            candidate.save(update_fields=["state", "stop_after"])
        try:
            with transaction.atomic():
                change_state(
                    release,
                    State.APPROVED,
                    _action_message(actor, f"retried the release as attempt {release.attempt + 1}", reason)
                    + (f"; server {candidate.pk} is used again" if reused else ""),
                    actor=actor,
                    kind="retry",
                    data=_action_data(reason),
                    attempt=release.attempt + 1,
                    stable_server=stable,
                    stable_version=stable.version if stable else None,
                    candidate_server=candidate if reused else None,
                    step_index=0,
                    step_attempt=0,
                    failed_analyses=0,
                    canary_weight=0,
                    failure_reason="",
                    finished_at=None,
                    pause_reason="",
                    paused_at=None,
                )
        except IntegrityError:
            raise Conflict(
                f"Endpoint {endpoint.name} got another release in progress meanwhile. Try again when it ends.",
                details={"state": release.state},
            ) from None
        schedule_controller(release)
    return release


def rollback_endpoint(endpoint: Endpoint, *, actor=None, reason: str) -> Release:
    """Roll back the endpoint's most recent promoted release."""
    release = endpoint.releases.filter(state=State.PROMOTED).order_by("-created_at").first()
    if release is None:
        raise Conflict(f"Endpoint {endpoint.name} has no promoted release to roll back.")
    return rollback(release.pk, actor=actor, reason=reason)


# Helpers


def _locked_in(release_id: int, verb: str, states) -> Release:
    """Lock the release, or raise Conflict with its state when it is in none of `states`."""
    release = get_release_for_update(release_id)
    if release.state not in states:
        allowed = _join_or([_state_name(state) for state in states])
        raise Conflict(
            f"Release {release.pk} is {_state_name(release.state)}, so it cannot be {verb}. Only a release that is {allowed} can.",
            details={"state": release.state},
        )
    return release


def _state_name(state: str) -> str:
    """Return a state's display name in lower case, such as "awaiting approval"."""
    return State(state).label.lower()


def _join_or(items: list[str]) -> str:
    """Join ["a", "b", "c"] as "a, b or c"."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


def _required_reason(reason: str, action: str, what_it_explains: str) -> str:
    """Return the stripped reason, or raise InvalidInput on field "reason" when it is empty."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(
            f"Give a reason to {action}. It is stored in the release's event log and the audit log, "
            f"so others can see {what_it_explains}.",
            field="reason",
        )
    return reason


def _state_for_candidate(server: ModelServer | None) -> str:
    """Return the state that continues starting the candidate from where `server` is."""
    if server is None:
        return State.APPROVED
    if server.state == ModelServer.State.PENDING:
        return State.BUILDING
    return State.DEPLOYING


def _require_ready_candidate(release: Release, verb: str) -> None:
    candidate = release.candidate_server
    if candidate is None or candidate.state != ModelServer.State.READY:
        state = candidate.state if candidate else "not created"
        raise Conflict(
            f"Release {release.pk} cannot be {verb} before its candidate server is ready (it is {state}).",
            details={"state": release.state},
        )


def _current_step(release: Release) -> dict | None:
    steps = release.plan.get("steps") or []
    return steps[release.step_index] if release.step_index < len(steps) else None


def _position(release: Release) -> str:
    """Describe where the release is, such as "step 2 of 4 (pause 60 s) with 10.0% of traffic on the candidate"."""
    steps = release.plan.get("steps") or []
    if release.state in (State.APPROVED, State.BUILDING, State.DEPLOYING):
        return f"{release.state} (the candidate serves no traffic yet)"
    weight = f"with {release.canary_weight}% of traffic on the candidate"
    if release.step_index >= len(steps):
        return f"promotion {weight}"
    step = plans.describe_step(steps[release.step_index])
    return f"step {release.step_index + 1} of {len(steps)} ({step}) {weight}"


def _action_message(actor, what: str, reason: str) -> str:
    message = f"{actor or 'system'} {what}"
    return f"{message}. Reason: {reason}" if reason else message


def _action_data(reason: str) -> dict:
    return {"reason": reason} if reason else {}
