"""Page-side access rules: a signed-in user needs a role, and portal errors become error pages.

The API applies the same rules in its DRF permission classes (token users
are only known inside DRF), so this middleware leaves /api/v1/ and the
schema alone.
"""

from __future__ import annotations

import logging

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from mlops_portal import access
from mlops_portal.errors import Forbidden, PortalError
from mlops_portal.views import not_found_error

logger = logging.getLogger("mlops_portal.access")


class PortalAccessMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        # Pages a signed-in user without a role still needs: signing out, and
        # Django's admin, which checks is_staff itself.
        self.exempt_prefixes = (reverse("logout"), reverse("login"), reverse("admin:index"), "/api/v1/", "/api/schema/", "/static/")

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith(self.exempt_prefixes):
            if not access.user_roles(user):
                return self._error_page(request, Forbidden(access.no_role_message(user)))
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith("/api/v1/"):
            return None
        if isinstance(exception, PortalError):
            return self._error_page(request, exception)
        # Http404 from a page view (get_object_or_404) gets the portal's 404
        # page here even with DEBUG on, which would show Django's technical page.
        if isinstance(exception, Http404):
            return self._error_page(request, not_found_error(request.path))
        return None

    def _error_page(self, request, error: PortalError):
        if error.status == 403:
            logger.info("Denied %s %s to user %s: %s", request.method, request.path, request.user.pk, error.message)
        template = "partials/error.html" if getattr(request, "htmx", False) else "error.html"
        return render(request, template, {"error": error}, status=error.status)

