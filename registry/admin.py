from django.contrib import admin

from registry.models import Artifact, ModelAlias, ModelTag, ModelVersion, RegisteredModel, VersionTag


class ModelTagInline(admin.TabularInline):
    model = ModelTag
    extra = 0


class ModelAliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 0
    raw_id_fields = ["version", "updated_by"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "last_version", "updated_at"]
    search_fields = ["name", "name_key", "tags__key", "tags__value"]
    inlines = [ModelTagInline, ModelAliasInline]


class VersionTagInline(admin.TabularInline):
    model = VersionTag
    extra = 0


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["model", "version", "status", "source", "archived", "created_at"]
    list_filter = ["status", "source", "archived"]
    search_fields = ["model__name", "source_uri", "mlflow_run_id"]
    list_select_related = ["model"]
    raw_id_fields = ["model", "artifact", "created_by"]
    inlines = [VersionTagInline]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["sha256", "size", "created_at"]
    search_fields = ["sha256"]


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["model", "alias", "version", "updated_by", "updated_at"]
    search_fields = ["model__name", "alias"]
    list_select_related = ["model", "version", "updated_by"]
    raw_id_fields = ["model", "version", "updated_by"]
