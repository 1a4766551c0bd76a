from rest_framework import serializers

from registry.models import ModelVersion, RegisteredModel


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    uri = serializers.CharField(read_only=True)
    artifact_sha256 = serializers.CharField(source="artifact.sha256", read_only=True, default=None)
    artifact_size = serializers.IntegerField(source="artifact.size", read_only=True, default=None)
    aliases = serializers.SerializerMethodField()
    created_by = serializers.StringRelatedField()

    class Meta:
        model = ModelVersion
        fields = [
            "id", "model", "version", "uri", "status", "status_reason", "flavors", "signature",
            "input_example", "metrics", "params", "source", "source_uri", "tracking_uri",
            "mlflow_run_id", "mlflow_model_id", "description", "archived", "aliases",
            "artifact_sha256", "artifact_size", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_aliases(self, version) -> list[str]:
        return [alias.alias for alias in version.aliases.all()]


class RegisteredModelSerializer(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(source="last_version", read_only=True)
    aliases = serializers.SerializerMethodField()
    owner = serializers.StringRelatedField()

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "description", "owner", "latest_version", "aliases", "created_at", "updated_at"]
        read_only_fields = ["id", "owner", "latest_version", "aliases", "created_at", "updated_at"]

    def get_aliases(self, model) -> dict[str, int]:
        return {alias.alias: alias.version.version for alias in model.aliases.all()}


class VersionCreateSerializer(serializers.Serializer):
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


class AliasSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
