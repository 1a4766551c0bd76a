"""Read-only queries and display values for the deployment pages, each bounded in queries."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from deployments.models import Approval, Endpoint, ImageBuild, ModelServer, Release, RouteBackend
from deployments.release_actions import available_actions
from deployments.services import builds, plans, traffic
from deployments.services.approvals import required_approvals
from mlops_portal import access

State = Release.State
RECENT_LIMIT = 10
# How far the release charts reach before the release started and after it ended.
CHART_LEAD = timedelta(minutes=2)
CHART_TAIL = timedelta(minutes=1)
CHART_POINTS = 150
# Lines at the end of a build log that the release page shows. The full log has a page of its own.
BUILD_LOG_TAIL_LINES = 200
# Release states in which a build may still appear for the candidate server.
_STATES_BEFORE_BUILD = (State.APPROVED, State.BUILDING)

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
    description: str  # such as "weight 10.0%" or "pause 60 s"
    status: str  # "done", "current" or "pending"


def plan_steps(release: Release) -> list[PlanStep]:
    """Return the release engine's plan steps, each marked done, current or pending."""
    started = release.state in (State.PROGRESSING, State.PAUSED, State.PROMOTED)
    rows = []
    for index, step in enumerate((release.plan or {}).get("steps") or []):
        if release.state == State.PROMOTED or (started and index < release.step_index):
            status = "done"
        elif started and index == release.step_index:
            status = "current"
        else:
            status = "pending"
        rows.append(PlanStep(index + 1, plans.describe_step(step), status))
    return rows


def progress(release: Release, steps: list[PlanStep]) -> int:
    """Return how far the release has come, in percent, for the progress bar."""
    if release.state in _STATE_PROGRESS:
        return _STATE_PROGRESS[release.state]
    if release.state in (State.PROGRESSING, State.PAUSED):
        if steps:
            done = sum(1 for step in steps if step.status == "done")
            return 30 + round(70 * done / (len(steps) + 1))
        return 30 + round(0.7 * float(release.canary_weight))
    # failed, aborted, rolled back: show how far the candidate's traffic got.
    return round(float(release.canary_weight))


@dataclasses.dataclass
class AnalysisCheck:
    time: object
    step: int | None
    metric: str
    value: str
    threshold: str
    verdict: str  # "passed", "failed" or "inconclusive"
    detail: str


def analysis_results(events) -> list[AnalysisCheck]:
    """Return each metric check of the analyses that the release engine recorded as "analysis" events."""
    results = []
    for event in events:
        data = event.data or {}
        if event.kind != "analysis" or "outcome" not in data:
            continue
        step = data["step"] + 1 if isinstance(data.get("step"), int) else None
        checks = data.get("checks") or []
        if not checks:
            # Too few requests to judge: the event message says how many.
            requests = (data.get("candidate") or {}).get("requests")
            results.append(AnalysisCheck(event.created_at, step, "requests", _number(requests), "", data["outcome"], event.message))
        for check in checks:
            metric = check.get("metric", "")
            results.append(
                AnalysisCheck(
                    time=event.created_at,
                    step=step,
                    metric=metric,
                    value=_metric_text(metric, check.get("value")),
                    threshold=_threshold_text(metric, check.get("minimum"), check.get("maximum")),
                    verdict=check.get("outcome", data["outcome"]),
                    detail=check.get("detail", ""),
                )
            )
    return results


def _metric_text(metric: str, value) -> str:
    if value is None:
        return "no data"
    if metric == "error_rate":
        return f"{value * 100:.2f}%"
    if metric == "request_count":
        return f"{value:.0f}"
    return f"{value:.1f} ms"


def _threshold_text(metric: str, minimum, maximum) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"≥ {_metric_text(metric, minimum)}")
    if maximum is not None:
        parts.append(f"≤ {_metric_text(metric, maximum)}")
    return ", ".join(parts)


def _number(value) -> str:
    return "no data" if value is None else str(value)


def release_page(user, release: Release) -> dict:
    """Return the context of the live part of the release page."""
    events = list(release.events.select_related("actor"))
    steps = plan_steps(release)
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


@dataclasses.dataclass
class BuildPanel:
    build: ImageBuild | None
    polling: bool  # whether the page reloads the panel every second
    log_tail: str = ""
    log_lines: int = 0
    hidden_lines: int = 0  # lines above the tail, which only the full log shows
    percent: int | None = None
    step_number: str = ""
    step_count: str = ""


def build_panel(release: Release) -> BuildPanel:
    """Return the candidate server's latest image build with the end of its log, for the release page.

    The panel polls while the build runs, and while the release may still
    queue one (approved or building without a build yet).
    """
    build = builds.latest_build(release.candidate_server) if release.candidate_server_id else None
    if build is None:
        return BuildPanel(build=None, polling=release.state in _STATES_BEFORE_BUILD)

    lines = build.log.splitlines()
    tail = lines[-BUILD_LOG_TAIL_LINES:]
    step_number, _, step_count = build.step.partition("/")
    return BuildPanel(
        build=build,
        polling=not build.is_final,
        log_tail="\n".join(tail),
        log_lines=len(lines),
        hidden_lines=len(lines) - len(tail),
        percent=None if build.progress is None else round(build.progress * 100),
        step_number=step_number,
        step_count=step_count,
    )


def release_series(release: Release) -> list[dict]:
    """Return request rate, error rate (percent) and p95 latency (ms) per version for the release's charts."""
    start = (release.started_at or release.created_at) - CHART_LEAD
    end = release.finished_at + CHART_TAIL if release.finished_at else timezone.now()
    end = min(end, timezone.now())
    # About CHART_POINTS points whatever the release's length. Intervals of at
    # least 5 s hold several gateway reports (one a second by default), so a
    # late report does not show as a gap followed by a spike.
    step_seconds = max(5.0, (end - start).total_seconds() / CHART_POINTS)

    series = traffic.endpoint_series(release.endpoint.name, start, end, step_seconds=step_seconds)
    return [
        {
            "label": f"v{version}",
            "points": [
                {
                    "t": point.time.timestamp(),
                    "rps": round(point.stats.request_rate, 3),
                    "error_rate": None if point.stats.error_rate is None else point.stats.error_rate * 100,
                    "p95_ms": point.stats.latency_ms(0.95),
                }
                for point in points
            ],
        }
        for version, points in sorted(series.items())
    ]


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
