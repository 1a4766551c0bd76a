"""Rejecting request bodies over PORTAL_MAX_UPLOAD_BYTES before anything reads them."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from mlops_portal.errors import PayloadTooLarge

logger = logging.getLogger("registry.uploads")


class RequestSizeLimitMiddleware:
    """Return 413 when Content-Length exceeds the upload limit, without reading the body.

    It must run before CsrfViewMiddleware, which parses form bodies, and before
    DRF, which parses them on first access to request.data.

    Under WSGI (gunicorn, as deployed) Django reads no body from a request
    without Content-Length, so a chunked upload arrives empty and cannot pass
    the limit. NOTE: under ASGI, Django spools the whole body to a temporary
    file before any middleware runs, so there the 413 comes after the upload.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.PORTAL_MAX_UPLOAD_BYTES
        if length.isdigit() and int(length) > limit:
            return self._too_large(request, int(length), limit)
        return self.get_response(request)

    def _too_large(self, request, length: int, limit: int) -> HttpResponse:
        error = PayloadTooLarge(
            f"The request body has {length} bytes; the limit is {limit} bytes (PORTAL_MAX_UPLOAD_BYTES).",
            field="artifact",
        )
        logger.info("Rejected %s %s: body of %d bytes over the limit of %d", request.method, request.path, length, limit)

        if request.path.startswith("/api/"):
            response = JsonResponse({"error": error.as_dict()}, status=error.status)
        else:
            response = HttpResponse(error.message, status=error.status, content_type="text/plain; charset=utf-8")
        return response
