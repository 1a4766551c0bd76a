"""Pages for registered models and their versions.

Pages address a model by id, so every name (with '/', '%', quotes or spaces)
gets working links; the list page finds models by name.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from mlops_portal.errors import PortalError
from registry.filters import ModelFilter, VersionFilter
from registry.models import ModelVersion, RegisteredModel
from registry.pagination import ordering_from, page_of, page_size_from
from registry.services import artifacts, compare, lifecycle, versions

MODEL_PAGE_ORDERINGS = {
    "name": ["name_key", "id"],
    "-updated_at": ["-updated_at", "-id"],
    "-created_at": ["-created_at", "-id"],
}
VERSION_PAGE_ORDERINGS = {"-version": ["-version", "-id"]}

logger = logging.getLogger("registry.views")


def _page_or_error(request, queryset, orderings, default):
    """Return (rows, next cursor, error message) for a keyset page built from the query string."""
    try:
        ordering = ordering_from(request.GET, orderings, default)
        return *page_of(queryset, ordering, request.GET.get("cursor"), page_size_from(request.GET)), ""
    except PortalError as exc:
        return [], None, exc.message


@login_required
def model_list(request):
    filters = ModelFilter(request.GET, queryset=RegisteredModel.objects.prefetch_related("aliases__version", "tags"))
    queryset = filters.qs if filters.is_valid() else RegisteredModel.objects.none()
    models, cursor, error = _page_or_error(request, queryset, MODEL_PAGE_ORDERINGS, "name")

    context = {
        "models": models,
        "filters": filters,
        "next_query": _query_with(request, cursor) if cursor else "",
        "error": error or _filter_errors(filters),
        "orderings": list(MODEL_PAGE_ORDERINGS),
        "ordering": request.GET.get("ordering") or "name",
    }
    return render(request, "registry/model_list.html", context)


@login_required
def model_detail(request, pk):
    model = get_object_or_404(RegisteredModel.objects.select_related("owner").prefetch_related("tags"), pk=pk)
    model_aliases = model.aliases.select_related("version", "updated_by")
    filters = VersionFilter(
        request.GET,
        queryset=model.versions.select_related("created_by").prefetch_related("aliases", "servers__endpoint"),
    )
    queryset = filters.qs if filters.is_valid() else ModelVersion.objects.none()
    model_versions, cursor, error = _page_or_error(request, queryset, VERSION_PAGE_ORDERINGS, "-version")

    context = {
        "model": model,
        "aliases": model_aliases,
        "versions": model_versions,
        "filters": filters,
        "next_query": _query_with(request, cursor) if cursor else "",
        "error": error or _filter_errors(filters),
    }
    return render(request, "registry/model_detail.html", context)


@login_required
def version_detail(request, pk, version):
    model = get_object_or_404(RegisteredModel, pk=pk)
    model_version = get_object_or_404(
        ModelVersion.objects.select_related("artifact", "created_by", "model").prefetch_related("tags", "aliases"),
        model=model,
        version=version,
    )
    servers = model_version.servers.select_related("endpoint").filter(state__in=lifecycle.RUNNING_SERVER_STATES)
    signature = model_version.signature or {}

    context = {
        "model": model,
        "version": model_version,
        "columns": _spec_rows(signature.get("inputs")),
        "outputs": _spec_rows(signature.get("outputs")),
        "servers": servers,
        "files": _files_or_empty(model_version),
        "other_versions": model.versions.exclude(pk=model_version.pk).values_list("version", flat=True)[:200],
    }
    return render(request, "registry/version_detail.html", context)


@login_required
def version_compare(request, pk):
    """Compare two versions of one model, chosen by number in the query string (?base=1&candidate=2)."""
    model = get_object_or_404(RegisteredModel, pk=pk)
    numbers = model.versions.values_list("version", flat=True)
    context = {"model": model, "numbers": numbers, "comparison": None, "error": ""}

    base, candidate = request.GET.get("base"), request.GET.get("candidate")
    if base and candidate:
        try:
            context["comparison"] = compare.compare_versions(
                versions.get_version(model.name, version=base, field="base"),
                versions.get_version(model.name, version=candidate, field="candidate"),
            )
        except PortalError as exc:
            context["error"] = exc.message
    return render(request, "registry/version_compare.html", context)


@login_required
@require_POST
def version_archive(request, pk, version):
    """Archive the version (form field archived=1) or restore it (archived=0)."""
    model_version = get_object_or_404(ModelVersion.objects.select_related("model"), model_id=pk, version=version)
    archived = request.POST.get("archived") == "1"

    lifecycle.set_archived(model_version, archived, actor=request.user)
    messages.success(request, f"{model_version} is {'archived' if archived else 'offered for releases again'}.")
    return redirect("registry:version-detail", pk=pk, version=version)


@login_required
@require_POST
def version_delete(request, pk, version):
    model_version = get_object_or_404(ModelVersion.objects.select_related("model"), model_id=pk, version=version)

    try:
        lifecycle.delete_version(model_version, actor=request.user)
    except PortalError as exc:
        messages.error(request, exc.message)
        return redirect("registry:version-detail", pk=pk, version=version)

    messages.success(request, f"Deleted {model_version}.")
    return redirect("registry:model-detail", pk=pk)


@login_required
def version_upload(request):
    """Register a version from a zipped MLflow model uploaded through the browser."""
    if request.method != "POST":
        return render(request, "registry/version_upload.html", {"name": request.GET.get("model", "")})

    name = request.POST.get("model", "")
    upload = request.FILES.get("artifact")
    if upload is None:
        context = {"error": "Choose a zip file to upload.", "field": "artifact", "name": name}
        return render(request, "registry/version_upload.html", context, status=400)

    try:
        version = versions.register_upload(name, upload, actor=request.user, description=request.POST.get("description", ""))
    except PortalError as exc:
        context = {"error": exc.message, "field": exc.field, "name": name}
        return render(request, "registry/version_upload.html", context, status=exc.status)

    messages.success(request, f"Registered {version}.")
    return redirect("registry:version-detail", pk=version.model_id, version=version.version)


def _spec_rows(specs: list[dict] | None) -> list[dict]:
    """Return signature specs for a table, with a tensor's dtype and shape as its type."""
    rows = []
    for spec in specs or []:
        kind = spec.get("type")
        if kind == "tensor":
            tensor = spec.get("tensor-spec") or {}
            kind = f"tensor {tensor.get('dtype')} {tensor.get('shape')}"
        rows.append({"name": spec.get("name"), "type": kind, "required": spec.get("required", True)})
    return rows


def _query_with(request, cursor: str) -> str:
    params = request.GET.copy()
    params["cursor"] = cursor
    return params.urlencode()


def _filter_errors(filters) -> str:
    if filters.is_valid():
        return ""
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in filters.errors.items())


def _files_or_empty(version: ModelVersion) -> list[dict]:
    if version.artifact is None:
        return []
    try:
        return artifacts.list_model_files(version.artifact)
    except OSError as exc:
        # The page still shows everything else when storage is unreachable.
        logger.warning("Cannot list the files of artifact %s of %s (id %s): %s", version.artifact.sha256, version, version.pk, exc)
        return []
