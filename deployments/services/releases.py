"""Creating releases and acting on them; the API and the UI both call these functions."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import Endpoint, Environment, ModelServer, Release, RouteBackend
from deployments.services import routing
from deployments.services.events import change_state, record_event
from mlops_portal.errors import Conflict, InvalidInput, NotFound
from registry.models import ModelVersion

logger = logging.getLogger("deployments.releases")

State = Release.State


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
    """Create a release of `version` to `endpoint`; it starts at once unless the environment needs approval."""
    _check_version_deployable(version)

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
            plan=plan or {},
            analysis=analysis or {},
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


def current_stable_server(endpoint: Endpoint) -> ModelServer | None:
    """Return the server that gets most of the endpoint's traffic now, if any."""
    backend = (
        RouteBackend.objects.filter(endpoint=endpoint, weight__gt=0)
        .select_related("server__version")
        .order_by("-weight", "server_id")
        .first()
    )
    return backend.server if backend else None


def schedule_controller(release: Release, countdown: float = 0) -> None:
    """Start a new chain of controller runs for a locked release, ending any older chain."""
    from deployments.tasks import advance_release

    release.run_token += 1
    release.next_run_at = timezone.now() + timedelta(seconds=countdown)
    release.save(update_fields=["run_token", "next_run_at", "updated_at"])

    token = release.run_token
    transaction.on_commit(lambda: advance_release.apply_async((release.pk, token), countdown=countdown))


def get_release_for_update(release_id: int) -> Release:
    release = (
        Release.objects.select_for_update(of=("self",))
        .select_related("endpoint__environment", "version__model", "stable_version__model")
        .filter(pk=release_id)
        .first()
    )
    if release is None:
        raise NotFound(f"Release {release_id} does not exist.")
    return release


def rollback(release_id: int, *, actor=None, reason: str = "") -> Release:
    """Send all traffic back to the release's stable version.

    When the stable server still runs (inside the scale-down delay) this is one
    route-table change. When it was already stopped, a new release starts the
    stable version again and switches to it once it is ready.
    """
    with transaction.atomic():
        release = get_release_for_update(release_id)
        if release.state != State.PROMOTED:
            raise Conflict(
                f"Release {release.pk} is {release.state}; only a promoted release can be rolled back.",
                details={"state": release.state},
            )
        if release.stable_version is None:
            raise Conflict(f"Release {release.pk} replaced no earlier version, so there is nothing to roll back to.")

        newer = release.endpoint.releases.filter(created_at__gt=release.created_at).exclude(state=State.REJECTED)
        if newer.exists():
            raise Conflict(
                f"Endpoint {release.endpoint.name} has a newer release ({newer.first().pk}); roll back that one.",
                details={"release": newer.first().pk},
            )

        stable = release.stable_server
        reason_text = f": {reason}" if reason else ""
        if stable is not None and stable.state == ModelServer.State.READY:
            _switch_back(release, stable)
            change_state(
                release,
                State.ROLLED_BACK,
                f"{actor or 'system'} rolled back to v{release.stable_version.version}{reason_text}",
                actor=actor,
            )
            return release

        change_state(
            release,
            State.ROLLED_BACK,
            f"{actor or 'system'} rolled back to v{release.stable_version.version}{reason_text}; "
            "the stable server was stopped, so a new release starts it again",
            actor=actor,
        )
        restart = Release.objects.create(
            endpoint=release.endpoint,
            version=release.stable_version,
            stable_version=release.version,
            stable_server=release.candidate_server,
            strategy=Release.Strategy.BLUE_GREEN,
            plan={"rollback_of": release.pk},
            state=State.APPROVED,
            requested_by=actor,
        )
        record_event(restart, "created", f"Rollback of release {release.pk}{reason_text}", actor=actor, to_state=State.APPROVED)
        schedule_controller(restart)
        return release


def _switch_back(release: Release, stable: ModelServer) -> None:
    routing.set_traffic(release.endpoint, {stable: 100}, roles={stable.pk: RouteBackend.Role.STABLE})
    stable.stop_after = None
    stable.save(update_fields=["stop_after"])

    candidate = release.candidate_server
    if candidate is not None and candidate.is_running:
        candidate.stop_after = timezone.now() + timedelta(seconds=settings.PORTAL_SCALE_DOWN_DELAY)
        candidate.save(update_fields=["stop_after"])


def rollback_endpoint(endpoint: Endpoint, *, actor=None, reason: str = "") -> Release:
    """Roll back the endpoint's most recent promoted release."""
    release = endpoint.releases.filter(state=State.PROMOTED).order_by("-created_at").first()
    if release is None:
        raise Conflict(f"Endpoint {endpoint.name} has no promoted release to roll back.")
    return rollback(release.pk, actor=actor, reason=reason)
