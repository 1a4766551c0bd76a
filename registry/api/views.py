"""REST API for models, versions, aliases, tags, artifacts, comparison and MLflow import.

`{model}` in a path is the model's id or its name. A name that is all digits or
contains '/' is reached by id; GET /api/v1/models/?name=NAME returns the id.
"""

from django.http import FileResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_portal.errors import InvalidInput
from mlops_portal.permissions import ModelAccess
from registry.api.serializers import (
    AliasSerializer,
    CompareSerializer,
    ComparisonSerializer,
    ImportResultSerializer,
    ImportSerializer,
    ModelUpdateSerializer,
    ModelVersionSerializer,
    RegisteredModelSerializer,
    TagSerializer,
    VersionCreateSerializer,
    VersionUpdateSerializer,
)
from registry.filters import ModelFilter, VersionFilter
from registry.models import ModelVersion, RegisteredModel
from registry.pagination import KeysetPagination
from registry.services import aliases, artifacts, compare, lifecycle, mlflow_import, tags, versions

MODEL_ORDERINGS = {
    "name": ["name_key", "id"],
    "-name": ["-name_key", "-id"],
    "-updated_at": ["-updated_at", "-id"],
    "updated_at": ["updated_at", "id"],
    "-created_at": ["-created_at", "-id"],
    "created_at": ["created_at", "id"],
}
VERSION_ORDERINGS = {
    "-version": ["-version", "-id"],
    "version": ["version", "id"],
    "-created_at": ["-created_at", "-id"],
    "created_at": ["created_at", "id"],
}
KEY_PARAMETER = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True, description="Tag key")


def get_version_or_404(model_reference: str, number: int) -> ModelVersion:
    model = versions.find_model(model_reference)
    return versions.get_version_of(model, number)


def model_queryset():
    return RegisteredModel.objects.prefetch_related("aliases__version", "tags")


def version_queryset():
    return ModelVersion.objects.select_related("model", "artifact", "created_by").prefetch_related("aliases", "tags")


class ModelListView(generics.ListCreateAPIView):
    """List and search registered models, or create one."""
    permission_classes = [ModelAccess]

    serializer_class = RegisteredModelSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = ModelFilter
    pagination_class = KeysetPagination
    ordering_options = MODEL_ORDERINGS
    default_ordering = "name"

    def get_queryset(self):
        return model_queryset()

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = lifecycle.create_model(
            serializer.validated_data["name"], description=serializer.validated_data.get("description", ""), actor=request.user
        )
        return Response(RegisteredModelSerializer(model_queryset().get(pk=model.pk)).data, status=status.HTTP_201_CREATED)


class ModelDetailView(APIView):
    permission_classes = [ModelAccess]
    serializer_class = RegisteredModelSerializer

    def get(self, request, model):
        found = versions.find_model(model)
        return Response(RegisteredModelSerializer(model_queryset().get(pk=found.pk)).data)

    @extend_schema(request=ModelUpdateSerializer, responses=RegisteredModelSerializer)
    def patch(self, request, model):
        found = versions.find_model(model)
        serializer = ModelUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lifecycle.update_description(found, serializer.validated_data["description"], actor=request.user)
        return Response(RegisteredModelSerializer(model_queryset().get(pk=found.pk)).data)


class ModelTagView(APIView):
    """Set (PUT) or remove (DELETE ?key=) one tag of a model."""
    permission_classes = [ModelAccess]

    @extend_schema(request=TagSerializer, responses=TagSerializer)
    def put(self, request, model):
        found = versions.find_model(model)
        serializer = TagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tag = tags.set_tag(found, serializer.validated_data["key"], serializer.validated_data["value"], actor=request.user)
        return Response({"key": tag.key, "value": tag.value})

    @extend_schema(parameters=[KEY_PARAMETER], responses={204: None})
    def delete(self, request, model):
        found = versions.find_model(model)
        tags.delete_tag(found, _required_query(request, "key"), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AliasView(APIView):
    """Point an alias at a version (PUT), or remove it (DELETE)."""
    permission_classes = [ModelAccess]

    @extend_schema(request=AliasSerializer, responses=ModelVersionSerializer)
    def put(self, request, model, alias):
        found = versions.find_model(model)
        serializer = AliasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = aliases.set_alias(found, alias, serializer.validated_data["version"], actor=request.user)
        return Response(ModelVersionSerializer(version_queryset().get(pk=version.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, model, alias):
        aliases.delete_alias(versions.find_model(model), alias, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListView(generics.ListAPIView):
    """List a model's versions, or register a new one from an upload or an MLflow URI."""
    permission_classes = [ModelAccess]

    serializer_class = ModelVersionSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filter_backends = [DjangoFilterBackend]
    filterset_class = VersionFilter
    pagination_class = KeysetPagination
    ordering_options = VERSION_ORDERINGS
    default_ordering = "-version"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ModelVersion.objects.none()
        return version_queryset().filter(model=versions.find_model(self.kwargs["model"]))

    @extend_schema(request=VersionCreateSerializer, responses={201: ModelVersionSerializer, 200: ModelVersionSerializer})
    def post(self, request, model):
        """Register a version; an MLflow version imported before into this model is returned with 200."""
        serializer = VersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        name = _model_name_for_registration(model)

        created = True
        if "artifact" in data:
            version = versions.register_upload(name, data["artifact"], actor=request.user, description=data["description"])
        else:
            version, created = versions.import_version(
                name, data["mlflow_uri"], data["tracking_uri"], actor=request.user, description=data["description"]
            )
        body = ModelVersionSerializer(version_queryset().get(pk=version.pk)).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class VersionDetailView(APIView):
    permission_classes = [ModelAccess]
    serializer_class = ModelVersionSerializer

    def get(self, request, model, version):
        found = get_version_or_404(model, version)
        return Response(ModelVersionSerializer(version_queryset().get(pk=found.pk)).data)

    @extend_schema(request=VersionUpdateSerializer, responses=ModelVersionSerializer)
    def patch(self, request, model, version):
        found = get_version_or_404(model, version)
        serializer = VersionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "description" in data:
            lifecycle.update_description(found, data["description"], actor=request.user)
        if "archived" in data:
            lifecycle.set_archived(found, data["archived"], actor=request.user)
        return Response(ModelVersionSerializer(version_queryset().get(pk=found.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, model, version):
        """Delete a version; 409 names the endpoints that serve it or the releases that refer to it."""
        lifecycle.delete_version(get_version_or_404(model, version), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionTagView(APIView):
    """Set (PUT) or remove (DELETE ?key=) one tag of a version."""
    permission_classes = [ModelAccess]

    @extend_schema(request=TagSerializer, responses=TagSerializer)
    def put(self, request, model, version):
        found = get_version_or_404(model, version)
        serializer = TagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tag = tags.set_tag(found, serializer.validated_data["key"], serializer.validated_data["value"], actor=request.user)
        return Response({"key": tag.key, "value": tag.value})

    @extend_schema(parameters=[KEY_PARAMETER], responses={204: None})
    def delete(self, request, model, version):
        found = get_version_or_404(model, version)
        tags.delete_tag(found, _required_query(request, "key"), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ArtifactView(APIView):
    """Download the version's artifact: the whole zip, or one file of the model with ?path=."""
    permission_classes = [ModelAccess]

    @extend_schema(
        parameters=[OpenApiParameter("path", OpenApiTypes.STR, OpenApiParameter.QUERY, description="File inside the model, such as MLmodel")],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request, model, version):
        found = get_version_or_404(model, version)
        artifact = found.artifact
        if artifact is None:
            raise InvalidInput(f"{found} has no stored artifact.", field="version")

        path = request.query_params.get("path")
        if path is None:
            filename = f"{found.model.name}-v{found.version}.zip"
            return FileResponse(artifacts.open_stored(artifact), as_attachment=True, filename=filename, content_type="application/zip")

        reader, size, member = artifacts.open_model_file(artifact, path)
        response = FileResponse(reader, as_attachment=True, filename=member.rsplit("/", 1)[-1], content_type="application/octet-stream")
        response["Content-Length"] = str(size)
        return response


class ArtifactFilesView(APIView):
    """List the files of the version's model, with their sizes."""
    permission_classes = [ModelAccess]

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}})
    def get(self, request, model, version):
        found = get_version_or_404(model, version)
        if found.artifact is None:
            return Response([])
        return Response(artifacts.list_model_files(found.artifact))


class CompareView(APIView):
    """Compare two versions: signature changes, and metric deltas from base to candidate."""
    permission_classes = [ModelAccess]

    @extend_schema(parameters=[CompareSerializer], responses=ComparisonSerializer)
    def get(self, request):
        serializer = CompareSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        base = versions.resolve_version(serializer.validated_data["base"], field="base")
        candidate = versions.resolve_version(serializer.validated_data["candidate"], field="candidate")
        return Response(compare.compare_versions(base, candidate).to_dict())


class ImportView(APIView):
    """Import a registered model from MLflow with all its versions, aliases and tags; safe to repeat."""
    permission_classes = [ModelAccess]

    @extend_schema(request=ImportSerializer, responses={201: ImportResultSerializer, 200: ImportResultSerializer})
    def post(self, request):
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = mlflow_import.import_registered_model(
            data["mlflow_model"], data["tracking_uri"], model_name=data.get("name"), actor=request.user
        )
        body = {
            "model": RegisteredModelSerializer(model_queryset().get(pk=result.model.pk)).data,
            "created": [version.version for version in result.created],
            "existing": [version.version for version in result.existing],
            "aliases_set": result.aliases_set,
            "tags_set": result.tags_set,
            "skipped": result.skipped,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.changed else status.HTTP_200_OK)


def _required_query(request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise InvalidInput(f"The query parameter '{name}' is missing; add ?{name}=... to the URL.", field=name)
    return value


def _model_name_for_registration(reference: str) -> str:
    """Return the model name to register under: an existing model's name, or `reference` as a new name."""
    if reference.isascii() and reference.isdigit():
        return versions.find_model(reference).name
    return reference
