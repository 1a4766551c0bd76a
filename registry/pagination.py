"""Keyset pagination: pages that never skip or repeat a row, however many rows share a timestamp.

Each ordering ends with a unique column (the primary key), so the values of the
last row on a page identify the position exactly. The next page contains the
rows strictly after it. An offset or a cursor on a non-unique column would skip or
repeat rows whenever rows are added or share a value.
"""

from __future__ import annotations

import base64
import binascii
import json

from django.db.models import Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from mlops_portal.errors import InvalidInput

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def encode_cursor(values: list) -> str:
    text = json.dumps(values, default=str, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, queryset: QuerySet, ordering: list[str]) -> list:
    """Return the ordering values that a cursor holds, converted to the columns' Python types."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != len(ordering):
        raise InvalidInput("The cursor is invalid; use the 'next' link of the previous page unchanged.", field="cursor")

    converted = []
    for name, value in zip(ordering, values):
        model_field = queryset.model._meta.get_field(name.lstrip("-"))
        try:
            converted.append(model_field.to_python(value))
        except Exception:  # noqa: BLE001 - any conversion failure means a tampered cursor
            raise InvalidInput("The cursor is invalid; use the 'next' link of the previous page unchanged.", field="cursor") from None
    return converted


def after(ordering: list[str], values: list) -> Q:
    """Build the condition 'row comes after `values` in `ordering`' as nested comparisons."""
    condition = Q()
    for index, name in enumerate(ordering):
        column = name.lstrip("-")
        lookup = "lt" if name.startswith("-") else "gt"
        equal = {ordering[earlier].lstrip("-"): values[earlier] for earlier in range(index)}
        condition |= Q(**equal, **{f"{column}__{lookup}": values[index]})
    return condition


def page_of(queryset: QuerySet, ordering: list[str], cursor: str | None, size: int) -> tuple[list, str | None]:
    """Return one page of rows and the cursor of the next page (None on the last page)."""
    if cursor:
        queryset = queryset.filter(after(ordering, decode_cursor(cursor, queryset, ordering)))

    rows = list(queryset.order_by(*ordering)[: size + 1])
    if len(rows) <= size:
        return rows, None

    rows = rows[:size]
    last = rows[-1]
    return rows, encode_cursor([getattr(last, name.lstrip("-")) for name in ordering])


def page_size_from(params, field: str = "page_size") -> int:
    raw = params.get(field)
    if raw in (None, ""):
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}, not {raw!r}.", field=field)
    return int(raw)


def ordering_from(params, options: dict[str, list[str]], default: str) -> list[str]:
    """Return the column list for the `ordering` parameter, which names one of `options`."""
    choice = params.get("ordering") or default
    if choice not in options:
        raise InvalidInput(f"ordering must be one of {', '.join(options)}, not {choice!r}.", field="ordering")
    return options[choice]


class KeysetPagination(BasePagination):
    """DRF pagination over the view's `ordering_options`; responses are {"next": URL or null, "results": [...]}."""

    def paginate_queryset(self, queryset, request, view=None):
        ordering = ordering_from(request.query_params, view.ordering_options, view.default_ordering)
        size = page_size_from(request.query_params)
        rows, cursor = page_of(queryset, ordering, request.query_params.get("cursor"), size)
        self.next_link = None
        if cursor is not None:
            params = request.query_params.copy()
            params["cursor"] = cursor
            self.next_link = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return rows

    def get_paginated_response(self, data):
        return Response({"next": self.next_link, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Position from the previous page's 'next' link."},
            {"name": "page_size", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}},
            {"name": "ordering", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(view.ordering_options), "default": view.default_ordering}},
        ]
