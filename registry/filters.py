"""Search and filters for models and versions, shared by the API and the pages.

Each filter is an EXISTS subquery rather than a join, so a model with several
matching versions or tags appears once and the keyset order stays intact.
"""

from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef, Q

from registry.models import ModelAlias, ModelTag, ModelVersion, RegisteredModel, VersionTag, normalize_model_name


def _tag_condition(value: str) -> Q:
    """Match `key` alone, or `key=value` exactly."""
    key, separator, tag_value = value.partition("=")
    condition = Q(key=key.strip())
    if separator:
        condition &= Q(value=tag_value)
    return condition


class ModelFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label="Name contains")
    name = django_filters.CharFilter(method="filter_name", label="Exact name (letter case and outer spaces ignored)")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag key, or key=value")
    alias = django_filters.CharFilter(method="filter_alias", label="Has this alias")
    flavor = django_filters.CharFilter(method="filter_flavor", label="Has a version with this flavor")
    status = django_filters.ChoiceFilter(
        choices=ModelVersion.Status.choices, method="filter_status", label="Has a version in this status"
    )

    class Meta:
        model = RegisteredModel
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(name_key__contains=normalize_model_name(value))

    def filter_name(self, queryset, name, value):
        return queryset.filter(name_key=normalize_model_name(value))

    def filter_tag(self, queryset, name, value):
        return queryset.filter(Exists(ModelTag.objects.filter(_tag_condition(value), model=OuterRef("pk"))))

    def filter_alias(self, queryset, name, value):
        return queryset.filter(Exists(ModelAlias.objects.filter(model=OuterRef("pk"), alias=value.strip())))

    def filter_flavor(self, queryset, name, value):
        versions = ModelVersion.objects.filter(model=OuterRef("pk"), flavors__has_key=value.strip())
        return queryset.filter(Exists(versions))

    def filter_status(self, queryset, name, value):
        return queryset.filter(Exists(ModelVersion.objects.filter(model=OuterRef("pk"), status=value)))


class VersionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ModelVersion.Status.choices)
    archived = django_filters.BooleanFilter()
    flavor = django_filters.CharFilter(method="filter_flavor", label="Has this flavor")
    alias = django_filters.CharFilter(method="filter_alias", label="Has this alias")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag key, or key=value")
    source = django_filters.ChoiceFilter(choices=ModelVersion.Source.choices)

    class Meta:
        model = ModelVersion
        fields = []

    def filter_flavor(self, queryset, name, value):
        return queryset.filter(flavors__has_key=value.strip())

    def filter_alias(self, queryset, name, value):
        return queryset.filter(Exists(ModelAlias.objects.filter(version=OuterRef("pk"), alias=value.strip())))

    def filter_tag(self, queryset, name, value):
        return queryset.filter(Exists(VersionTag.objects.filter(_tag_condition(value), version=OuterRef("pk"))))
