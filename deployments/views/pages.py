"""Read-only pages: dashboard, endpoints and releases; the live parts are partials that htmx polls."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from deployments import presenters
from deployments.models import Release
from deployments.services import routing
from mlops_portal import access

# htmx stops polling when a response has this status.
HTMX_STOP_POLLING = 286
RELEASE_LIST_LIMIT = 100


@login_required
def dashboard(request):
    context = presenters.dashboard(request.user)

    template = "deployments/partials/dashboard_panels.html" if request.htmx else "deployments/dashboard.html"
    return render(request, template, context)


@login_required
def endpoint_list(request):
    endpoints = list(presenters.endpoints_with_traffic(request.user))
    for endpoint in endpoints:
        endpoint.health = presenters.endpoint_health(endpoint)
    return render(request, "deployments/endpoint_list.html", {"endpoints": endpoints})


@login_required
def endpoint_detail(request, name):
    endpoint = access.get_endpoint_for_user(request.user, name)

    traffic = routing.traffic_split(endpoint)
    serving = {backend.server.version_id for backend in traffic if backend.weight > 0}
    context = {
        "endpoint": endpoint,
        "traffic": traffic,
        "history": presenters.release_rows(endpoint.releases.all()).order_by("-created_at", "-id")[:20],
        "servers": endpoint.servers.select_related("version__model")[:20],
        "recent_versions": presenters.recent_versions(endpoint, serving),
        "can_restore": access.can_operate_in(request.user, endpoint.environment),
    }
    return render(request, "deployments/endpoint_detail.html", context)


@login_required
def release_list(request):
    state = request.GET.get("state", "")
    releases = presenters.release_rows(access.visible_releases(request.user))
    if state in Release.State.values:
        releases = releases.filter(state=state)
    context = {"releases": releases.order_by("-created_at", "-id")[:RELEASE_LIST_LIMIT], "state": state, "states": Release.State.choices}
    return render(request, "deployments/release_list.html", context)


def _get_release(request, release_id) -> Release:
    queryset = Release.objects.select_related(
        "endpoint__environment", "version__model", "stable_version__model", "requested_by", "candidate_server"
    )
    return access.get_release_for_user(request.user, release_id, queryset=queryset)


@login_required
def release_detail(request, release_id):
    release = _get_release(request, release_id)

    context = {**presenters.release_page(request.user, release), "build_panel": presenters.build_panel(release)}
    return render(request, "deployments/release_detail.html", context)


@login_required
def release_status(request, release_id):
    """Return the live part of the release page; ends htmx polling once the release is final.

    The page sends the state it shows; when the state has changed, the
    response triggers `release-state-changed`, which reloads the action buttons.
    """
    release = _get_release(request, release_id)

    context = presenters.release_page(request.user, release)
    status = HTMX_STOP_POLLING if release.is_final else 200
    response = render(request, "deployments/partials/release_status.html", context, status=status)
    if request.GET.get("state", release.state) != release.state:
        response["HX-Trigger"] = "release-state-changed"
    return response


@login_required
def release_build(request, release_id):
    """Return the release page's build panel, with status 286 to end htmx polling once nothing can change."""
    release = _get_release(request, release_id)

    panel = presenters.build_panel(release)
    status = 200 if panel.polling else HTMX_STOP_POLLING
    return render(request, "deployments/partials/release_build.html", {"release": release, "build_panel": panel}, status=status)


@login_required
def build_log(request, build_id):
    """Return an image build's whole stored log as plain text."""
    build = access.get_build_for_user(request.user, build_id)

    response = HttpResponse(build.log, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="build-{build.pk}.log"'
    return response


@login_required
def release_actions(request, release_id):
    release = _get_release(request, release_id)

    context = presenters.release_page(request.user, release)
    return render(request, "deployments/partials/release_actions.html", context)


@login_required
def release_metrics(request, release_id):
    """Return the chart series as JSON: one entry per version with time, request rate, error rate and p95."""
    release = _get_release(request, release_id)

    return JsonResponse({"final": release.is_final, "versions": presenters.release_series(release)})
