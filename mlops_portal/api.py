"""The API's error format: {"error": {"code", "message", "field"?, "fields"?, "details"?}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, pagination, status
from rest_framework.response import Response

from mlops_portal.errors import PortalError

logger = logging.getLogger("mlops_portal.api")


def exception_handler(exc, context):
    """Map portal errors and DRF errors to one JSON shape; never return a traceback."""
    if isinstance(exc, PortalError):
        return Response({"error": exc.as_dict()}, status=exc.status)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.ValidationError):
        return Response({"error": _validation_error(exc.detail)}, status=status.HTTP_400_BAD_REQUEST)

    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        body = {"code": exc.default_code, "message": str(exc.detail)}
        return Response({"error": body}, status=exc.status_code, headers=headers)

    view = context.get("view")
    logger.exception("Unhandled error in API view %s", type(view).__name__ if view else "?")
    return Response(
        {"error": {"code": "server_error", "message": "Internal server error; the server log has the details."}},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _validation_error(detail) -> dict:
    """Build a message that names the first invalid field, and keep every field's errors."""
    if isinstance(detail, dict):
        fields = {name: _messages(value) for name, value in detail.items()}
        name, messages = next(iter(fields.items()))
        if name == "non_field_errors":
            message = messages[0]
        else:
            message = f"{name}: {messages[0]}"
        body = {"code": "invalid", "message": message, "fields": fields}
        if name != "non_field_errors":
            body["field"] = name
        return body

    messages = _messages(detail)
    return {"code": "invalid", "message": messages[0] if messages else "Invalid input."}


def _messages(value) -> list[str]:
    if isinstance(value, dict):
        return [f"{key}: {message}" for key, inner in value.items() for message in _messages(inner)]
    if isinstance(value, list):
        return [message for item in value for message in _messages(item)]
    return [str(value)]


class CursorPagination(pagination.CursorPagination):
    """Cursor pages newest first by id, a field every model has (DRF's default orders by "created")."""

    ordering = "-id"
