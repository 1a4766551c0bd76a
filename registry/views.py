"""Pages for registered models and their versions."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from mlops_portal import access
from mlops_portal.errors import PortalError
from registry.models import ModelVersion, RegisteredModel, normalize_model_name
from registry.services import versions


@login_required
def model_list(request):
    models = RegisteredModel.objects.prefetch_related("aliases__version")
    query = request.GET.get("q", "").strip()
    if query:
        models = models.filter(name_key__contains=normalize_model_name(query))
    return render(request, "registry/model_list.html", {"models": models, "query": query})


@login_required
def model_detail(request, name):
    model = get_object_or_404(RegisteredModel, name_key=normalize_model_name(name))
    model_versions = model.versions.select_related("artifact", "created_by").prefetch_related("aliases")
    return render(request, "registry/model_detail.html", {"model": model, "versions": model_versions})


@login_required
def version_detail(request, name, version):
    model = get_object_or_404(RegisteredModel, name_key=normalize_model_name(name))
    model_version = get_object_or_404(ModelVersion.objects.select_related("artifact", "created_by"), model=model, version=version)
    servers = model_version.servers.select_related("endpoint").filter(state__in=["starting", "ready"])
    columns = (model_version.signature or {}).get("inputs") or []
    context = {"model": model, "version": model_version, "columns": columns, "servers": servers}
    return render(request, "registry/version_detail.html", context)


@login_required
def version_upload(request):
    """Register a version from a zipped MLflow model uploaded through the browser."""
    access.check_model_capability(request.user, access.Capability.REGISTER)
    if request.method != "POST":
        return render(request, "registry/version_upload.html", {})

    name = request.POST.get("model", "")
    upload = request.FILES.get("artifact")
    if upload is None:
        return render(request, "registry/version_upload.html", {"error": "Choose a zip file to upload.", "name": name}, status=400)

    try:
        version = versions.register_upload(name, upload, actor=request.user, description=request.POST.get("description", ""))
    except PortalError as exc:
        return render(request, "registry/version_upload.html", {"error": exc.message, "field": exc.field, "name": name}, status=exc.status)

    messages.success(request, f"Registered {version}.")
    return redirect("registry:version-detail", name=version.model.name, version=version.version)
