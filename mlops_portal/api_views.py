"""The API root, and the JSON 404 response for paths under /api/ that match no route."""

from __future__ import annotations

from django.urls import Resolver404, resolve, reverse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_portal.errors import NotFound

# Collections that the root lists, by key, with their URL names in the "api" namespace.
COLLECTIONS = {
    "models": "api:model-list",
    "environments": "api:environment-list",
    "endpoints": "api:endpoint-list",
    "releases": "api:release-list",
    "builds": "api:build-list",
}


class ApiRootView(APIView):
    """List the API's main collections with their absolute URLs, as DRF's DefaultRouter root does."""

    @extend_schema(exclude=True)
    def get(self, request):
        links = {key: request.build_absolute_uri(reverse(name)) for key, name in COLLECTIONS.items()}
        links["schema"] = request.build_absolute_uri(reverse("api-schema"))
        links["docs"] = request.build_absolute_uri(reverse("api-docs"))
        return Response(links)


class ApiNotFoundView(APIView):
    """Return a JSON 404 in the API's error format for any method on an unknown path under /api/.

    Without this route Django returns an HTML page, which with DEBUG on is its
    technical 404 page that lists every URL pattern. Only signed-in users with a
    role get the 404, because DRF's default permission class runs first.
    """

    schema = None

    def reject_unknown_path(self, request, *args, **kwargs):
        path = request.path
        if not path.endswith("/") and _resolves_elsewhere(path + "/"):
            raise NotFound(f"No API route matches {path}; add a trailing slash: {path}/.")
        raise NotFound(f"No API route matches {path}. GET /api/v1/ lists the collections, and /api/docs/ describes every route.")

    get = post = put = patch = delete = head = options = reject_unknown_path


def _resolves_elsewhere(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return getattr(match.func, "view_class", None) is not ApiNotFoundView
