"""Serializer pieces that every app's API can share."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers


# Rejects request fields that the serializer does not write. DRF drops unknown
# and read-only keys from input without a word, so a request such as
# PATCH {"version": 7} returned 200 and changed nothing. Put the mixin before the
# serializer class: `class S(RejectUnknownFieldsMixin, serializers.Serializer)`.
# The 400 names every such field and lists the fields that the request may set.
# A comment, not a docstring, because drf-spectacular would show a docstring
# inherited from here as the description of every request schema.
class RejectUnknownFieldsMixin:
    # Keys that HTML forms add to the body, such as those of DRF's browsable API.
    ignored_input_keys = ("csrfmiddlewaretoken",)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = [name for name, field in self.fields.items() if not field.read_only]
            errors = {}
            for key in data:
                if key in writable or key in self.ignored_input_keys:
                    continue
                problem = "This field is read-only" if key in self.fields else "Unknown field; check its spelling"
                errors[key] = [f"{problem}. This request accepts only {_join(writable)}."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _join(names: list[str]) -> str:
    if not names:
        return "no fields"
    return ", ".join(names)
