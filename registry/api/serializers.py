import json
from collections.abc import Mapping

from rest_framework import serializers

from mlops_portal.serializers import RejectUnknownFieldsMixin
from registry.models import ModelVersion, RegisteredModel


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    model_id = serializers.IntegerField(read_only=True)
    uri = serializers.CharField(read_only=True)
    artifact_sha256 = serializers.CharField(source="artifact.sha256", read_only=True, default=None)
    artifact_size = serializers.IntegerField(source="artifact.size", read_only=True, default=None)
    aliases = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    created_by = serializers.StringRelatedField()

    class Meta:
        model = ModelVersion
        fields = [
            "id", "model", "model_id", "version", "uri", "status", "status_reason", "flavors", "signature",
            "input_example", "metrics", "params", "source", "source_uri", "tracking_uri",
            "mlflow_run_id", "mlflow_model_id", "description", "archived", "aliases", "tags",
            "artifact_sha256", "artifact_size", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_aliases(self, version) -> list[str]:
        return [alias.alias for alias in version.aliases.all()]

    def get_tags(self, version) -> dict[str, str]:
        return {tag.key: tag.value for tag in version.tags.all()}


class RegisteredModelSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    latest_version = serializers.IntegerField(source="last_version", read_only=True)
    aliases = serializers.SerializerMethodField()
    tags = serializers.SerializerMethodField()
    owner = serializers.StringRelatedField()

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "description", "owner", "latest_version", "aliases", "tags", "created_at", "updated_at"]
        read_only_fields = ["id", "owner", "latest_version", "aliases", "tags", "created_at", "updated_at"]
        # The service checks names and reports duplicates as 409, not the model field's validators.
        extra_kwargs = {"name": {"validators": []}}

    def get_aliases(self, model) -> dict[str, int]:
        return {alias.alias: alias.version.version for alias in model.aliases.all()}

    def get_tags(self, model) -> dict[str, str]:
        return {tag.key: tag.value for tag in model.tags.all()}


class ModelUpdateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    description = serializers.CharField(allow_blank=True)


class VersionUpdateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    archived = serializers.BooleanField(required=False)


class VersionCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Either `artifact` (a zipped MLflow model directory) or `mlflow_uri` with `tracking_uri`."""

    artifact = serializers.FileField(required=False)
    mlflow_uri = serializers.CharField(required=False, max_length=1000)
    tracking_uri = serializers.CharField(required=False, max_length=1000)
    description = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, data):
        has_file = "artifact" in data
        has_uri = bool(data.get("mlflow_uri"))
        if has_file == has_uri:
            raise serializers.ValidationError(
                {"artifact": "Send either a zipped MLflow model as 'artifact', or 'mlflow_uri' with 'tracking_uri'."}
            )
        if has_uri and not data.get("tracking_uri"):
            raise serializers.ValidationError(
                {"tracking_uri": "Give the MLflow tracking URI that holds the model, such as sqlite:///mlflow.db."}
            )
        return data


class AliasSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class TagSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """One tag per request: {"key": "team", "value": "oncology"}."""

    key = serializers.CharField(max_length=250, trim_whitespace=False)
    value = serializers.CharField(max_length=5000, allow_blank=True, trim_whitespace=False)

    def to_internal_value(self, data):
        # A plain {"team": "oncology"} object is rejected, not read as a tag,
        # because a tag named "key" or "value" would make that form ambiguous.
        if isinstance(data, Mapping) and data and "key" not in data and "value" not in data:
            tag_key, tag_value = next(iter(data.items()))
            expected = json.dumps({"key": tag_key, "value": tag_value}, default=str)
            sent = json.dumps({tag_key: tag_value}, default=str)
            raise serializers.ValidationError(
                {"key": [f"This field is missing. Send one tag per request as {expected}, not {sent}."]}
            )
        return super().to_internal_value(data)


class CompareSerializer(serializers.Serializer):
    base = serializers.CharField(help_text="models:/NAME/VERSION or models:/NAME@ALIAS of the version in use")
    candidate = serializers.CharField(help_text="models:/NAME/VERSION or models:/NAME@ALIAS of the version to compare")


class MetricDeltaSerializer(serializers.Serializer):
    name = serializers.CharField()
    base = serializers.FloatField(allow_null=True)
    candidate = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True)


class ComparisonSerializer(serializers.Serializer):
    base = serializers.CharField()
    candidate = serializers.CharField()
    compatible = serializers.BooleanField(help_text="True when every request valid for base is valid for candidate")
    input_changes = serializers.ListField(child=serializers.CharField())
    output_changes = serializers.ListField(child=serializers.CharField())
    metrics = MetricDeltaSerializer(many=True)


class ImportSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    tracking_uri = serializers.CharField(max_length=1000)
    mlflow_model = serializers.CharField(max_length=256, help_text="Registered model name in MLflow")
    name = serializers.CharField(max_length=256, required=False, help_text="Portal model name (default: mlflow_model)")


class ImportResultSerializer(serializers.Serializer):
    model = RegisteredModelSerializer()
    created = serializers.ListField(child=serializers.IntegerField(), help_text="Portal version numbers created")
    existing = serializers.ListField(child=serializers.IntegerField(), help_text="Portal versions imported before")
    aliases_set = serializers.ListField(child=serializers.CharField())
    tags_set = serializers.ListField(child=serializers.CharField())
    skipped = serializers.ListField(child=serializers.CharField())
