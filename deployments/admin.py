from django import forms
from django.contrib import admin

from deployments.models import (
    Approval,
    Endpoint,
    Environment,
    GatewayInstance,
    ModelServer,
    Release,
    ReleaseEvent,
    RouteBackend,
)
from deployments.services import environments
from mlops_portal.errors import InvalidInput


class EnvironmentAdminForm(forms.ModelForm):
    """An environment form that checks the runtime against this portal's settings, and runtime_config's keys and ranges, as the API does."""

    class Meta:
        model = Environment
        fields = "__all__"

    def clean_runtime(self):
        runtime = self.cleaned_data["runtime"]
        _form_checked(environments.check_runtime, runtime)
        return runtime

    def clean_runtime_config(self):
        # An emptied field arrives as None, but the column needs an object.
        config = self.cleaned_data.get("runtime_config")
        if config is None:
            return {}
        _form_checked(environments.check_runtime_config, config)
        return config

    def clean(self):
        cleaned = super().clean()
        runtime = cleaned.get("runtime")
        config = cleaned.get("runtime_config") or {}
        if runtime:
            try:
                _form_checked(environments.check_resources_supported, runtime, config, "runtime_config")
            except forms.ValidationError as error:
                self.add_error("runtime_config", error)
        return cleaned


def _form_checked(check, *args) -> None:
    """Run a service-layer check, turning its InvalidInput into a form validation error with the same message."""
    try:
        check(*args)
    except InvalidInput as exc:
        raise forms.ValidationError(exc.message) from exc


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentAdminForm
    list_display = ["name", "runtime", "requires_approval", "approvals_required"]
    filter_horizontal = ["restricted_to"]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "environment", "created_at"]
    list_select_related = ["environment"]


class ReleaseEventInline(admin.TabularInline):
    model = ReleaseEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "from_state", "to_state", "actor", "message", "created_at"]
    fields = readonly_fields


class ApprovalInline(admin.TabularInline):
    """Approvals are made on the release page or through the API, so the admin only shows them."""

    model = Approval
    extra = 0
    can_delete = False
    readonly_fields = ["approver", "decision", "comment", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["id", "endpoint", "version", "strategy", "state", "requested_by", "created_at"]
    list_filter = ["state", "strategy"]
    list_select_related = ["endpoint", "version__model", "requested_by"]
    raw_id_fields = ["version", "stable_version", "candidate_server", "stable_server", "requested_by"]
    inlines = [ApprovalInline, ReleaseEventInline]


@admin.register(ModelServer)
class ModelServerAdmin(admin.ModelAdmin):
    list_display = ["id", "endpoint", "version", "runtime", "state", "url", "created_at"]
    list_filter = ["state", "runtime"]
    list_select_related = ["endpoint", "version__model"]


@admin.register(RouteBackend)
class RouteBackendAdmin(admin.ModelAdmin):
    list_display = ["endpoint", "server", "weight", "role"]


@admin.register(GatewayInstance)
class GatewayInstanceAdmin(admin.ModelAdmin):
    list_display = ["instance", "revision", "last_seen"]
