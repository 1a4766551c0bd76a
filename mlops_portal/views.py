"""Error pages of the portal that Django calls itself."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render

from mlops_portal.errors import NotFound


def page_not_found(request, exception=None):
    """Render the portal's 404 page, or the API's JSON error for paths under /api/.

    Django calls this for a URL that matches no route, and for Http404 that a
    view raises, only when DEBUG is off.
    """
    error = not_found_error(request.path)
    if request.path.startswith("/api/"):
        return JsonResponse({"error": error.as_dict()}, status=404)
    return render(request, "error.html", {"error": error}, status=404)


def not_found_error(path: str) -> NotFound:
    return NotFound(f"Nothing was found at {path}. The object may have been deleted, or the link is wrong.")
