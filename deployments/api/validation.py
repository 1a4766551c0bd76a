"""Strict request bodies for the deployments API.

DRF drops fields that a serializer does not declare, so a typo such as
"stratgy" would go unnoticed and the release would run with the default
strategy. The serializers of the write routes reject such fields instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers

# Form posts from DRF's browsable API carry Django's CSRF token next to the fields.
IGNORED_FIELDS = {"csrfmiddlewaretoken"}


class RejectUnknownFieldsMixin:
    """Reject a body with a top-level field that the serializer cannot write, naming the field and the accepted ones.

    Read-only fields count as unknown, because the server would ignore them.
    Put the mixin before the serializer class in the bases.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            accepted = sorted(name for name, field in self.fields.items() if not field.read_only)
            unknown = sorted(key for key in data if key not in accepted and key not in IGNORED_FIELDS)
            if unknown:
                names = ", ".join(accepted) if accepted else "none"
                raise serializers.ValidationError(
                    {name: f"Unknown field; remove it or check its spelling. Accepted fields: {names}." for name in unknown}
                )
        return super().to_internal_value(data)
