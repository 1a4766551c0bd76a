"""The audit log page: filters, their errors, and the CSV export."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(world):
    rows = [
        (world["dana"], "release.created", "churn-development", "churn", "Dana asked"),
        (world["olga"], "release.approval", "churn-production", "churn", "Olga approved"),
        (None, "release.state", "churn-fraud", "churn", "system moved fraud"),
        (world["dana"], "version.register", "", "other-model", "=HYPERLINK(\"x\")"),
    ]
    return [
        AuditEntry.objects.create(
            actor=actor, action=action, object_type="deployments.release", object_id="1", endpoint=endpoint, model=model, message=message
        )
        for actor, action, endpoint, model, message in rows
    ]


def messages_on_page(response) -> list[str]:
    return [entry.message for entry in response.context["page"]]


def test_audit_log_filters_by_user(world, entries):
    response = client_for(world["olga"]).get("/audit/", {"user": "olga"})
    assert messages_on_page(response) == ["Olga approved"]


def test_audit_log_filters_system(world, entries):
    response = client_for(world["olga"]).get("/audit/", {"user": "system"})
    assert messages_on_page(response) == ["system moved fraud"]


def test_audit_log_filters_by_endpoint(world, entries):
    response = client_for(world["olga"]).get("/audit/", {"endpoint": "churn-development"})
    assert messages_on_page(response) == ["Dana asked"]


def test_audit_log_filters_by_model(world, entries):
    response = client_for(world["olga"]).get("/audit/", {"model": "other-model"})
    assert len(messages_on_page(response)) == 1


def test_audit_log_filters_by_action_prefix(world, entries):
    response = client_for(world["olga"]).get("/audit/", {"action": "release"})
    assert len(messages_on_page(response)) == 3


def test_audit_log_filters_by_time(world, entries):
    AuditEntry.objects.filter(pk=entries[0].pk).update(created_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client_for(world["olga"]).get("/audit/", {"since": since})
    assert "Dana asked" not in messages_on_page(response)


def test_audit_log_reversed_range_errors_next_to_field(world, entries):
    response = client_for(world["olga"]).get("/audit/", {"since": "2026-12-05T00:00", "until": "2026-12-01T00:00"})
    assert 'id="id_until_error"' in response.content.decode()


def test_audit_log_hides_restricted_environment(world, entries):
    response = client_for(world["dana"]).get("/audit/")
    assert "system moved fraud" not in messages_on_page(response)


def test_audit_export_is_csv_with_header(world, entries):
    response = client_for(world["olga"]).get("/audit/export.csv", {"endpoint": "churn-production"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["time", "user", "action", "object_type", "object_id", "endpoint", "model", "message"]
    assert [row[7] for row in rows[1:]] == ["Olga approved"]


def test_audit_export_neutralizes_formulas(world, entries):
    response = client_for(world["olga"]).get("/audit/export.csv", {"model": "other-model"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][7] == "'=HYPERLINK(\"x\")"


def test_audit_export_names_attachment(world, entries):
    response = client_for(world["olga"]).get("/audit/export.csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
