from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from deployments.api.serializers import (
    ActionSerializer,
    ApprovalSerializer,
    BuildDetailSerializer,
    BuildSerializer,
    EndpointSerializer,
    EnvironmentSerializer,
    ReleaseCreateSerializer,
    ReleaseEventSerializer,
    RejectionSerializer,
    ReleaseSerializer,
)
from deployments.filters import BuildFilter
from deployments.services import approvals, builds, releases
from mlops_portal import access
from mlops_portal.access import Capability
from mlops_portal.errors import InvalidInput, NotFound
from mlops_portal.permissions import BuildAccess, EndpointAccess, EnvironmentAccess, ReleaseAccess
from registry.services.versions import get_model_by_name, get_version, get_version_of, resolve_version


class EnvironmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = EnvironmentSerializer
    permission_classes = [EnvironmentAccess]
    lookup_field = "name"

    def get_queryset(self):
        return access.visible_environments(self.request.user).order_by("name")


class EndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = EndpointSerializer
    permission_classes = [EndpointAccess]
    lookup_field = "name"

    def get_queryset(self):
        return access.visible_endpoints(self.request.user).select_related("environment").prefetch_related("backends__server__version__model").order_by("name")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "gateway_url": settings.PORTAL_GATEWAY_URL}

    def perform_create(self, serializer):
        with _body_reference():
            access.get_environment_for_user(self.request.user, serializer.validated_data["environment"].name, Capability.REQUEST)
        serializer.save(created_by=self.request.user)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request, name=None):
        """Roll back the endpoint's most recent promoted release."""
        serializer = ActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        release = releases.rollback_endpoint(self.get_object(), actor=request.user, reason=serializer.validated_data["reason"])
        return Response(ReleaseSerializer(release).data)


class ReleaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ReleaseSerializer
    permission_classes = [ReleaseAccess]

    def get_queryset(self):
        return (
            access.visible_releases(self.request.user)
            .select_related("endpoint", "version__model", "stable_version", "requested_by", "candidate_server")
            .prefetch_related(builds.prefetch_candidate_build())
            .order_by("-created_at", "-id")
        )

    @extend_schema(request=ReleaseCreateSerializer, responses={201: ReleaseSerializer})
    @transaction.atomic
    def create(self, request):
        """Create a release; a new endpoint is created with it, and neither is stored when the request is invalid."""
        serializer = ReleaseCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        with _body_reference():
            if data.get("model_uri"):
                version = resolve_version(data["model_uri"], field="model_uri")
            else:
                model = get_model_by_name(data["model"], field="model")
                if "alias" in data:
                    version = get_version(model.name, alias=data["alias"], field="alias")
                else:
                    version = get_version_of(model, data["version"], field="version")

            environment = None
            if data.get("environment"):
                environment = access.get_environment_for_user(request.user, data["environment"], Capability.REQUEST)
        access.check_endpoint_name_for_request(request.user, data["endpoint"])
        endpoint = releases.get_or_create_endpoint(data["endpoint"], environment, actor=request.user)

        release = releases.create_release(
            endpoint, version, strategy=data["strategy"], plan=data["plan"], analysis=data["analysis"], actor=request.user
        )
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)

    def _act(self, request, pk, service):
        """Validate the reason, call the release action and return the release (409 when the state forbids the action)."""
        serializer = ActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        release = service(int(pk), actor=request.user, reason=serializer.validated_data["reason"])
        return Response(ReleaseSerializer(release).data)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Hold a progressing release at its current step and traffic split."""
        return self._act(request, pk, releases.pause)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Continue a paused release."""
        return self._act(request, pk, releases.resume)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        """End the current pause or analysis step and go on with the next step."""
        return self._act(request, pk, releases.promote)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"], url_path="promote-fully")
    def promote_fully(self, request, pk=None):
        """Skip the remaining steps and send all traffic to the candidate."""
        return self._act(request, pk, releases.promote_fully)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request, pk=None):
        """Send all traffic back to the stable version at once, keeping the candidate running for inspection."""
        return self._act(request, pk, releases.abort)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """After promotion, send all traffic back to the previous stable version."""
        return self._act(request, pk, releases.rollback)

    @extend_schema(request=ActionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Run a failed or aborted release again from its first step."""
        return self._act(request, pk, releases.retry)

    @extend_schema(request=ApprovalSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a release that waits for approval; the requester cannot approve their own."""
        serializer = ApprovalSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        release = approvals.approve(int(pk), actor=request.user, comment=serializer.validated_data["comment"])
        return Response(ReleaseSerializer(release).data)

    @extend_schema(request=RejectionSerializer, responses=ReleaseSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject a release that waits for approval; the reason is required."""
        serializer = RejectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        release = approvals.reject(int(pk), actor=request.user, reason=serializer.validated_data["reason"])
        return Response(ReleaseSerializer(release).data)

    @extend_schema(responses=ReleaseEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        release = self.get_object()
        return Response(ReleaseEventSerializer(release.events.select_related("actor"), many=True).data)


class BuildViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Image builds of model servers, newest first. The list leaves out the logs, and the detail has them."""

    permission_classes = [BuildAccess]
    filter_backends = [DjangoFilterBackend]
    filterset_class = BuildFilter

    def get_queryset(self):
        queryset = access.visible_builds(self.request.user).select_related("version__model").order_by("-created_at", "-pk")
        if self.action == "list":
            queryset = queryset.defer("log", "prepared")
        return queryset

    def get_serializer_class(self):
        return BuildDetailSerializer if self.action == "retrieve" else BuildSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("server", OpenApiTypes.INT, description="Only builds of this model server."),
            OpenApiParameter(
                "version", OpenApiTypes.INT, description="Only builds of this model version, by its id in /api/v1/models/{model}/versions/."
            ),
            OpenApiParameter(
                "release", OpenApiTypes.INT, description="Only builds of this release's candidate servers, including those of earlier attempts."
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        """List image builds, newest first, without their logs."""
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "log_offset",
                OpenApiTypes.INT,
                description="Return the log from this character offset on. Pass the log_length of the previous "
                "response to get only the text added since.",
            )
        ]
    )
    def retrieve(self, request, pk=None):
        """Return a build with its log. Poll with log_offset to follow a running build."""
        build = self.get_object()
        context = {**self.get_serializer_context(), "log_offset": _log_offset(request)}
        return Response(BuildDetailSerializer(build, context=context).data)


@contextmanager
def _body_reference():
    """Turn NotFound for a name given in the request body into InvalidInput on the same field.

    The URL exists and only the body is wrong, so the status is 400, and 404
    stays for URLs of missing objects.
    """
    try:
        yield
    except NotFound as exc:
        raise InvalidInput(exc.message, field=exc.field, details=exc.details) from exc


def _log_offset(request) -> int:
    raw = request.query_params.get("log_offset", "0")
    try:
        offset = int(raw)
    except ValueError:
        offset = -1
    if offset < 0:
        raise InvalidInput(f"log_offset must be a whole number of characters, 0 or more, but got {raw!r}.", field="log_offset")
    return offset
