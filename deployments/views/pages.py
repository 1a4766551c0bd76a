"""Pages for endpoints and releases; the release status is a partial that htmx polls."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deployments.models import Endpoint, Release
from deployments.services import releases, routing
from mlops_portal.errors import PortalError

# htmx stops polling when a response has this status.
HTMX_STOP_POLLING = 286


@login_required
def dashboard(request):
    endpoints = Endpoint.objects.select_related("environment").prefetch_related("backends__server__version__model")
    active = Release.objects.filter(state__in=Release.OPEN_STATES).select_related("endpoint", "version__model")
    recent = Release.objects.select_related("endpoint", "version__model", "requested_by")[:10]
    return render(request, "deployments/dashboard.html", {"endpoints": endpoints, "active": active, "recent": recent})


@login_required
def endpoint_list(request):
    endpoints = Endpoint.objects.select_related("environment").prefetch_related("backends__server__version__model")
    return render(request, "deployments/endpoint_list.html", {"endpoints": endpoints})


@login_required
def endpoint_detail(request, name):
    endpoint = get_object_or_404(Endpoint.objects.select_related("environment"), name=name)
    history = endpoint.releases.select_related("version__model", "requested_by")[:20]
    servers = endpoint.servers.select_related("version__model")[:20]
    context = {"endpoint": endpoint, "traffic": routing.traffic_split(endpoint), "history": history, "servers": servers}
    return render(request, "deployments/endpoint_detail.html", context)


@login_required
def release_list(request):
    release_rows = Release.objects.select_related("endpoint", "version__model", "requested_by")[:100]
    return render(request, "deployments/release_list.html", {"releases": release_rows})


def _release_context(release_id):
    release = get_object_or_404(
        Release.objects.select_related("endpoint__environment", "version__model", "stable_version", "requested_by", "candidate_server"),
        pk=release_id,
    )
    events = release.events.select_related("actor")
    return {"release": release, "events": events, "traffic": routing.traffic_split(release.endpoint)}


@login_required
def release_detail(request, release_id):
    return render(request, "deployments/release_detail.html", _release_context(release_id))


@login_required
def release_status(request, release_id):
    """Return the live part of the release page; ends htmx polling once the release is final."""
    context = _release_context(release_id)
    status = HTMX_STOP_POLLING if context["release"].is_final else 200
    return render(request, "deployments/partials/release_status.html", context, status=status)


@login_required
@require_POST
def release_rollback(request, release_id):
    try:
        releases.rollback(release_id, actor=request.user, reason=request.POST.get("reason", ""))
    except PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Release {release_id} rolled back.")
    return redirect("release-detail", release_id=release_id)
