"""One error vocabulary for service functions, the API and the UI.

Service functions raise these; the DRF exception handler in mlops_portal.api
turns them into JSON, and views turn them into form errors or messages.
"""

from __future__ import annotations

from typing import Any


class PortalError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(PortalError):
    status = 400
    code = "invalid"


class NotFound(PortalError):
    status = 404
    code = "not_found"


class Forbidden(PortalError):
    status = 403
    code = "forbidden"


class Conflict(PortalError):
    """The request makes no sense in the object's current state; details carry that state."""

    status = 409
    code = "conflict"


class PayloadTooLarge(PortalError):
    status = 413
    code = "too_large"
