"""The audit log page and its CSV export, both limited to what the user may see."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.forms import AuditFilterForm
from mlops_portal import access

PAGE_SIZE = 50
CSV_COLUMNS = ["time", "user", "action", "object_type", "object_id", "endpoint", "model", "message"]


def _filtered_entries(request):
    form = AuditFilterForm(request.GET)
    entries = access.visible_audit_entries(request.user).select_related("actor")
    if form.is_valid():
        entries = form.filter(entries)
    else:
        entries = entries.none()
    return form, entries


@login_required
def audit_log(request):
    form, entries = _filtered_entries(request)

    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(request, "audit/audit_log.html", context)


@login_required
def audit_export(request):
    """Stream every matching entry as CSV, oldest first, without loading them all into memory."""
    form, entries = _filtered_entries(request)

    rows = (_csv_row(entry) for entry in entries.order_by("created_at", "id").iterator(chunk_size=2000))
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in _with_header(rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


def _with_header(rows):
    yield CSV_COLUMNS
    yield from rows


def _csv_row(entry) -> list[str]:
    values = [
        entry.created_at.isoformat(),
        entry.actor.get_username() if entry.actor else "system",
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.endpoint,
        entry.model,
        entry.message,
    ]
    return [_neutralize_formula(value) for value in values]


def _neutralize_formula(value: str) -> str:
    """Prefix a quote to text that a spreadsheet would run as a formula (reasons are free text)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value
