"""The audit log's filter form; the page and the CSV export read the same filters."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from audit.models import AuditEntry


class AuditFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150, label="User", help_text="Exact username; 'system' for the controller.")
    endpoint = forms.CharField(required=False, max_length=64, label="Endpoint")
    model = forms.CharField(required=False, max_length=256, label="Model")
    action = forms.CharField(required=False, max_length=64, label="Action", help_text="Such as release.state, or release for every release action.")
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), help_text="UTC"
    )
    until = forms.DateTimeField(
        required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), help_text="UTC"
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the time range is before its start.")
        return cleaned

    def filter(self, entries: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        """Narrow `entries` by the valid filters; call after is_valid()."""
        data = self.cleaned_data
        if data.get("user") == "system":
            entries = entries.filter(actor__isnull=True)
        elif data.get("user"):
            entries = entries.filter(actor__username=data["user"])
        if data.get("endpoint"):
            entries = entries.filter(endpoint=data["endpoint"])
        if data.get("model"):
            entries = entries.filter(model=data["model"])
        if data.get("action"):
            action = data["action"]
            entries = entries.filter(action__startswith=action if "." in action else f"{action}.")
        if data.get("since"):
            entries = entries.filter(created_at__gte=data["since"])
        if data.get("until"):
            entries = entries.filter(created_at__lte=data["until"])
        return entries
