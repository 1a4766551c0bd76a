from django.conf import settings
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from mlops_portal.errors import PayloadTooLarge
from mlops_portal.permissions import ModelAccess
from registry.api.serializers import (
    AliasSerializer,
    ModelVersionSerializer,
    RegisteredModelSerializer,
    VersionCreateSerializer,
)
from registry.models import ModelVersion, RegisteredModel, normalize_model_name
from registry.services import aliases, versions


def get_model(name: str) -> RegisteredModel:
    return get_object_or_404(RegisteredModel, name_key=normalize_model_name(name))


class RegisteredModelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = RegisteredModelSerializer
    permission_classes = [ModelAccess]
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return RegisteredModel.objects.prefetch_related("aliases__version").order_by("name_key", "id")

    def get_object(self):
        return get_model(self.kwargs["name"])

    def perform_create(self, serializer):
        versions.validate_model_name(serializer.validated_data["name"], field="name")
        with transaction.atomic():
            model = versions.get_or_create_model(serializer.validated_data["name"], self.request.user)
            model.description = serializer.validated_data.get("description", "")
            model.save(update_fields=["description", "updated_at"])
        serializer.instance = model

    @extend_schema(request=AliasSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["put", "delete"], url_path=r"aliases/(?P<alias>[-a-zA-Z0-9_]+)")
    def alias(self, request, name=None, alias=None):
        model = self.get_object()
        if request.method == "DELETE":
            aliases.delete_alias(model, alias, actor=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)

        serializer = AliasSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = aliases.set_alias(model, alias, serializer.validated_data["version"], actor=request.user)
        return Response(ModelVersionSerializer(version).data)


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ModelVersionSerializer
    permission_classes = [ModelAccess]
    lookup_field = "version"
    lookup_value_regex = r"\d+"
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        model = get_model(self.kwargs["model_name"])
        return (
            ModelVersion.objects.filter(model=model)
            .select_related("model", "artifact", "created_by")
            .prefetch_related("aliases")
            .order_by("-version")
        )

    @extend_schema(request=VersionCreateSerializer, responses={201: ModelVersionSerializer})
    def create(self, request, model_name=None):
        """Register a version from an uploaded zip or from an MLflow model URI."""
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.PORTAL_MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(
                f"The request body has {length} bytes; the limit is {settings.PORTAL_MAX_UPLOAD_BYTES} bytes "
                "(PORTAL_MAX_UPLOAD_BYTES).",
                field="artifact",
            )

        serializer = VersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "artifact" in data:
            version = versions.register_upload(
                model_name, data["artifact"], actor=request.user, description=data["description"]
            )
        else:
            version = versions.register_from_mlflow(
                model_name, data["mlflow_uri"], data["tracking_uri"], actor=request.user, description=data["description"]
            )
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)
