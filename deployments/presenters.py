"""Read-only queries and display values for the deployment pages, each bounded in queries."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from deployments.models import Approval, Endpoint, ModelServer, Release, RouteBackend
from deployments.services import traffic
from mlops_portal import access

State = Release.State
RECENT_LIMIT = 10
# How far back the release charts reach before the release started.
CHART_LEAD = timedelta(minutes=2)

# Share of the progress bar that each state before traffic moves has reached.
_STATE_PROGRESS = {
    State.DRAFT: 0,
    State.AWAITING_APPROVAL: 0,
    State.REJECTED: 0,
    State.APPROVED: 5,
    State.BUILDING: 15,
    State.DEPLOYING: 30,
    State.PROMOTED: 100,
}


def endpoints_with_traffic(user) -> QuerySet[Endpoint]:
    backends = RouteBackend.objects.select_related("server__version__model").order_by("-weight", "server_id")
    return (
        access.visible_endpoints(user)
        .select_related("environment")
        .prefetch_related(Prefetch("backends", queryset=backends))
        .order_by("name")
    )


def endpoint_health(endpoint: Endpoint) -> str:
    """Return "healthy", "degraded" or "no traffic" from the prefetched backends' servers."""
    routed = [backend for backend in endpoint.backends.all() if backend.weight > 0]
    if not routed:
        return "no traffic"
    if all(backend.server.state == ModelServer.State.READY for backend in routed):
        return "healthy"
    return "degraded"


def release_rows(queryset: QuerySet[Release]) -> QuerySet[Release]:
    return queryset.select_related("endpoint__environment", "version__model", "requested_by")


def dashboard(user) -> dict:
    releases = release_rows(access.visible_releases(user))
    endpoints = list(endpoints_with_traffic(user))
    for endpoint in endpoints:
        endpoint.health = endpoint_health(endpoint)
    return {
        "endpoints": endpoints,
        "in_progress": list(releases.filter(state__in=Release.ACTIVE_STATES).order_by("-created_at")[:RECENT_LIMIT]),
        "waiting": list(approvals_waiting_for(user)),
        "failures": list(
            releases.filter(state__in=[State.FAILED, State.ROLLED_BACK, State.ABORTED]).order_by("-created_at")[:RECENT_LIMIT]
        ),
    }


def approvals_waiting_for(user) -> QuerySet[Release]:
    """Return the releases that wait for this user's approval: not their own, not decided by them yet."""
    if not access.has_role(user, access.ADMIN, access.OPS_LEAD):
        return Release.objects.none()
    waiting = access.visible_releases(user).filter(state=State.AWAITING_APPROVAL)
    waiting = waiting.exclude(requested_by=user).exclude(approvals__approver=user)
    return release_rows(waiting).order_by("created_at")[:RECENT_LIMIT]


# --- one release ---


@dataclasses.dataclass
class PlanStep:
    number: int
    weight: float
    pause_seconds: int
    analysis: bool
    status: str  # "done", "current" or "pending"


def plan_steps(release: Release) -> list[PlanStep]:
    """Return the canary plan with each step marked done, current or pending."""
    rows = []
    started = release.state in (State.PROGRESSING, State.PAUSED, State.PROMOTED)
    for index, step in enumerate((release.plan or {}).get("steps") or []):
        if release.state == State.PROMOTED or (started and index < release.step_index):
            status = "done"
        elif started and index == release.step_index:
            status = "current"
        else:
            status = "pending"
        rows.append(
            PlanStep(index + 1, float(step.get("weight", 0)), int(step.get("pause_seconds", 0)), bool(step.get("analysis")), status)
        )
    return rows


def progress(release: Release, steps: list[PlanStep]) -> int:
    """Return how far the release has come, in percent, for the progress bar."""
    if release.state in _STATE_PROGRESS:
        return _STATE_PROGRESS[release.state]
    if release.state in (State.PROGRESSING, State.PAUSED):
        if steps:
            done = sum(1 for step in steps if step.status == "done")
            return 30 + round(70 * done / len(steps))
        return 30 + round(0.7 * float(release.canary_weight))
    # failed, aborted, rolled back: show how far the candidate's traffic got.
    return round(float(release.canary_weight))


@dataclasses.dataclass
class AnalysisResult:
    time: object
    step: int | None
    metric: str
    value: float | None
    threshold: float | None
    verdict: str  # "pass", "fail" or "inconclusive"


def analysis_results(events) -> list[AnalysisResult]:
    """Return the analysis outcomes recorded as events of kind "analysis".

    NOTE: reads `data` as {"step", "checks": [{"metric", "value", "threshold",
    "verdict"}]}. That shape is this page's assumption, not yet checked against
    the release engine's analysis events. An event without checks shows as one
    row read from its own fields.
    """
    results = []
    for event in events:
        if event.kind != "analysis":
            continue
        data = event.data or {}
        checks = data.get("checks") or [data]
        for check in checks:
            results.append(
                AnalysisResult(
                    time=event.created_at,
                    step=data.get("step"),
                    metric=str(check.get("metric", "")),
                    value=check.get("value"),
                    threshold=check.get("threshold"),
                    verdict=str(check.get("verdict", "inconclusive")),
                )
            )
    return results


def release_page(user, release: Release) -> dict:
    """Return the context of the live part of the release page."""
    events = list(release.events.select_related("actor"))
    steps = plan_steps(release)
    from deployments.release_actions import available_actions
    from deployments.services.approvals import required_approvals

    context = {
        "release": release,
        "events": events,
        "traffic": RouteBackend.objects.filter(endpoint=release.endpoint)
        .select_related("server__version__model")
        .order_by("-weight", "server_id"),
        "steps": steps,
        "current_step": next((step for step in steps if step.status == "current"), None),
        "progress": progress(release, steps),
        "analyses": analysis_results(events),
        "approvals": list(release.approvals.select_related("approver")),
        "actions": available_actions(user, release),
    }
    if release.state == State.AWAITING_APPROVAL:
        context["approvals_required"] = required_approvals(release)
        context["approvers"] = access.eligible_approvers(release)
        context["approved_count"] = sum(1 for approval in context["approvals"] if approval.decision == Approval.Decision.APPROVED)
    return context


def release_series(release: Release) -> list[dict]:
    """Return request rate, error rate and p95 latency per version for the release's charts."""
    series = getattr(traffic, "version_series", None)
    if series is None:
        # NOTE: the release engine adds per-version time series to
        # deployments.services.traffic; until it lands the charts stay empty.
        return []
    since = (release.started_at or release.created_at) - CHART_LEAD
    until = release.finished_at + timedelta(minutes=1) if release.finished_at else timezone.now()
    return series(release.endpoint.name, since=since, until=until)


# --- one endpoint ---


def recent_versions(endpoint: Endpoint, serving_ids: set[int]) -> list:
    """Return the versions that recent releases served or replaced and that serve no traffic now, newest first."""
    recent = (
        endpoint.releases.filter(state__in=[State.PROMOTED, State.ROLLED_BACK])
        .select_related("version__model", "stable_version__model")
        .order_by("-created_at", "-id")[: RECENT_LIMIT * 2]
    )
    versions, seen = [], set(serving_ids)
    for release in recent:
        for version in (release.version, release.stable_version):
            if version is not None and version.pk not in seen:
                seen.add(version.pk)
                versions.append(version)
    return versions[:RECENT_LIMIT]


def version_of_endpoint(endpoint: Endpoint, version_id: str):
    """Return the version with this id if the endpoint's recent releases served or replaced it."""
    try:
        wanted = int(version_id)
    except ValueError:
        return None
    return next((version for version in recent_versions(endpoint, set()) if version.pk == wanted), None)
