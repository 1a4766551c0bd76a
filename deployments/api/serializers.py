from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlops_portal.serializers import RejectUnknownFieldsMixin
from deployments.models import Endpoint, Environment, ImageBuild, Release, ReleaseEvent, RouteBackend
from deployments.services import builds, environments
from mlops_portal.errors import InvalidInput


class EnvironmentSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["id", "name", "description", "requires_approval", "approvals_required", "runtime", "runtime_config", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "runtime": {"help_text": "Where model servers run. docker needs DOCKER_HOST on the web server and the workers."},
            "runtime_config": {
                "help_text": "Model server defaults: workers (1 to 64 processes), max_batch_size (1 to 4096 rows), "
                "memory_mb (64 to 1048576 MiB) and cpus (0.1 to 256). A release's plan.resources wins over memory_mb and cpus."
            },
        }

    def validate_runtime(self, value):
        return _checked(environments.check_runtime, value)

    def validate_runtime_config(self, value):
        return _checked(environments.check_runtime_config, value)

    def validate(self, attrs):
        runtime = attrs.get("runtime", self.instance.runtime if self.instance else Environment.Runtime.LOCAL)
        config = attrs.get("runtime_config", self.instance.runtime_config if self.instance else {}) or {}
        try:
            environments.check_resources_supported(runtime, config, "runtime_config")
        except InvalidInput as exc:
            raise serializers.ValidationError({"runtime_config": exc.message}) from exc
        return attrs


def _checked(check, value):
    """Run a service-layer check on a field value, turning its InvalidInput into the field's validation error."""
    try:
        check(value)
    except InvalidInput as exc:
        raise serializers.ValidationError(exc.message) from exc
    return value


class TrafficSerializer(serializers.ModelSerializer):
    server = serializers.IntegerField(source="server_id")
    model = serializers.CharField(source="server.version.model.name")
    version = serializers.IntegerField(source="server.version.version")
    url = serializers.CharField(source="server.url")

    class Meta:
        model = RouteBackend
        fields = ["server", "model", "version", "weight", "role", "url"]


class EndpointSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Environment.objects.all(),
        error_messages={"does_not_exist": "Environment {value!r} does not exist; GET /api/v1/environments/ lists them."},
    )
    traffic = TrafficSerializer(source="backends", many=True, read_only=True)
    invocations_url = serializers.SerializerMethodField()
    infer_url = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = [
            "id", "name", "environment", "description", "sticky_header", "traffic",
            "invocations_url", "infer_url", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "traffic", "created_at", "updated_at"]

    def get_invocations_url(self, endpoint) -> str:
        return f"{self.context['gateway_url']}/endpoints/{endpoint.name}/invocations"

    def get_infer_url(self, endpoint) -> str:
        return f"{self.context['gateway_url']}/v2/models/{endpoint.name}/infer"


class ReleaseEventSerializer(serializers.ModelSerializer):
    actor = serializers.StringRelatedField()

    class Meta:
        model = ReleaseEvent
        fields = ["id", "kind", "from_state", "to_state", "actor", "message", "data", "created_at"]


class BuildSummarySerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True, allow_null=True, help_text="Share of the image's build steps done, from 0 to 1, or null before the first step.")

    class Meta:
        model = ImageBuild
        fields = ["id", "state", "step", "progress", "image", "failure_reason"]
        read_only_fields = fields


class BuildSerializer(serializers.ModelSerializer):
    """An image build without its log, which only the detail route returns."""

    version_uri = serializers.CharField(source="version.uri", read_only=True)
    progress = serializers.FloatField(read_only=True, allow_null=True, help_text="Share of the image's build steps done, from 0 to 1, or null before the first step.")
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="Seconds from start to finish, or to now while running.")

    class Meta:
        model = ImageBuild
        fields = [
            "id", "server", "version", "version_uri", "runtime", "state", "step", "step_description", "progress",
            "image", "image_id", "digest", "reused", "failure_reason",
            "created_at", "started_at", "finished_at", "heartbeat_at", "duration_seconds",
        ]
        read_only_fields = fields


class BuildDetailSerializer(BuildSerializer):
    """An image build with its log text from `log_offset` (in the serializer context) to the end."""

    log = serializers.SerializerMethodField(help_text="The stored log from log_offset to its end.")
    log_offset = serializers.SerializerMethodField(help_text="Character offset where `log` starts.")
    log_length = serializers.SerializerMethodField(
        help_text="Length in characters of the whole log, dropped beginning included. Pass it as log_offset to get only newer text."
    )
    log_cut = serializers.SerializerMethodField(
        help_text="True once the log outgrew its limit of 200,000 characters and its beginning was dropped; offsets still count from the start."
    )

    class Meta(BuildSerializer.Meta):
        fields = [*BuildSerializer.Meta.fields, "log", "log_offset", "log_length", "log_cut"]
        read_only_fields = fields

    def get_log(self, build) -> str:
        return build.log[max(self.context.get("log_offset", 0) - build.log_dropped, 0):]

    def get_log_offset(self, build) -> int:
        return self.context.get("log_offset", 0)

    def get_log_length(self, build) -> int:
        return build.log_dropped + len(build.log)

    def get_log_cut(self, build) -> bool:
        return build.log_dropped > 0


class ReleaseSerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name")
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.version")
    stable_version = serializers.IntegerField(source="stable_version.version", default=None)
    requested_by = serializers.StringRelatedField()
    candidate_server = serializers.IntegerField(source="candidate_server_id")
    stable_server = serializers.IntegerField(source="stable_server_id")
    step_count = serializers.SerializerMethodField()
    build = serializers.SerializerMethodField(help_text="Latest image build of the candidate server; null when it has none.")

    class Meta:
        model = Release
        fields = [
            "id", "endpoint", "model", "version", "stable_version", "strategy", "plan", "analysis", "state",
            "step_index", "step_count", "attempt", "canary_weight", "failed_analyses", "pause_reason", "paused_at",
            "candidate_server", "stable_server", "build", "failure_reason", "requested_by",
            "created_at", "updated_at", "started_at", "step_started_at", "finished_at",
        ]

    def get_step_count(self, release) -> int:
        return len((release.plan or {}).get("steps") or [])

    @extend_schema_field(BuildSummarySerializer(allow_null=True))
    def get_build(self, release) -> dict | None:
        build = builds.candidate_build(release)
        return None if build is None else BuildSummarySerializer(build).data


class ReleaseCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """The version is `model` with `version` or `alias`, or a `model_uri` such as models:/name@champion."""

    endpoint = serializers.SlugField(max_length=64)
    environment = serializers.SlugField(max_length=64, required=False)
    model = serializers.CharField(max_length=256, required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    alias = serializers.CharField(max_length=100, required=False)
    model_uri = serializers.CharField(max_length=400, required=False)
    strategy = serializers.ChoiceField(choices=Release.Strategy.choices, default=Release.Strategy.BLUE_GREEN)
    plan = serializers.DictField(required=False, default=dict)
    analysis = serializers.DictField(required=False, default=dict)

    def validate(self, data):
        if data.get("model_uri"):
            if any(key in data for key in ("model", "version", "alias")):
                raise serializers.ValidationError({"model_uri": "Give either model_uri, or model with version or alias, not both."})
            return data
        if "model" not in data:
            raise serializers.ValidationError({"model": "Give the model name with version or alias, or a model_uri."})
        if ("version" in data) == ("alias" in data):
            raise serializers.ValidationError({"version": "Give exactly one of version and alias."})
        return data


class ActionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ApprovalSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RejectionSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000)
