"""Query filters for the deployment API."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import IntegerField, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from deployments.models import ImageBuild, Release, ReleaseEvent


class IdFilter(django_filters.NumberFilter):
    """A filter on a whole-number id; "1.5" or "x" get status 400.

    BuildViewSet.list documents these filters for the schema, which would
    otherwise show them as numbers.
    """

    field_class = forms.IntegerField


class BuildFilter(django_filters.FilterSet):
    server = IdFilter(field_name="server_id", label="Model server id")
    version = IdFilter(field_name="version_id", label="Model version id (the `id` of /api/v1/models/{model}/versions/)")
    release = IdFilter(method="filter_release", label="Release id: builds of its candidate servers, across retries")

    class Meta:
        model = ImageBuild
        fields = []

    def filter_release(self, queryset, name, value):
        # A retry may replace the candidate server, so the builds that the
        # controller recorded in "build" events count as well as the current
        # candidate's.
        candidate = Release.objects.filter(pk=value).values("candidate_server_id")
        recorded = (
            ReleaseEvent.objects.filter(release_id=value, kind="build", data__has_key="build")
            .annotate(build_id=Cast(KeyTextTransform("build", "data"), IntegerField()))
            .values("build_id")
        )
        return queryset.filter(Q(server_id__in=candidate) | Q(pk__in=recorded))
