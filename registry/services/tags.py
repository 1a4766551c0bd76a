"""Setting and removing key/value tags on registered models and on versions."""

from __future__ import annotations

import logging

from django.db import transaction

from audit.services import record_action
from mlops_portal.errors import InvalidInput, NotFound
from registry.models import ModelTag, ModelVersion, RegisteredModel, VersionTag

logger = logging.getLogger("registry.tags")

MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 5000


def _validate(key: str, value: str) -> str:
    cleaned = (key or "").strip()
    if not cleaned:
        raise InvalidInput("The tag key is empty; give a key such as 'team'.", field="key")
    if len(cleaned) > MAX_KEY_LENGTH:
        raise InvalidInput(f"The tag key has {len(cleaned)} characters; at most {MAX_KEY_LENGTH} are allowed.", field="key")
    if not cleaned.isprintable():
        raise InvalidInput("The tag key contains control characters; use printable characters only.", field="key")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"The tag value has {len(value)} characters; at most {MAX_VALUE_LENGTH} are allowed.", field="value")
    return cleaned


def _owner(target: RegisteredModel | ModelVersion) -> tuple[type, dict, str, str]:
    """Return the tag class, the filter that selects the target's tags, a label and the model name."""
    if isinstance(target, RegisteredModel):
        return ModelTag, {"model": target}, target.name, target.name
    return VersionTag, {"version": target}, str(target), target.model.name


def set_tag(target: RegisteredModel | ModelVersion, key: str, value: str, *, actor=None):
    """Create or overwrite one tag of a model or a version."""
    key = _validate(key, value or "")
    tag_class, owner, label, model_name = _owner(target)

    with transaction.atomic():
        previous = tag_class.objects.filter(key=key, **owner).values_list("value", flat=True).first()
        tag, _ = tag_class.objects.update_or_create(key=key, defaults={"value": value or ""}, **owner)
        record_action(
            actor,
            f"{target._meta.model_name}.tag.set",
            target,
            f"Tag {key} of {label} set to {value!r}",
            model=model_name,
            data={"key": key, "from_value": previous, "to_value": tag.value},
        )

    logger.info("Tag %r of %s (id %s) set by %s", key, label, target.pk, actor)
    return tag


def delete_tag(target: RegisteredModel | ModelVersion, key: str, *, actor=None) -> None:
    tag_class, owner, label, model_name = _owner(target)

    with transaction.atomic():
        deleted, _ = tag_class.objects.filter(key=key, **owner).delete()
        if not deleted:
            raise NotFound(f"{label} has no tag {key!r}.", field="key")
        record_action(
            actor,
            f"{target._meta.model_name}.tag.delete",
            target,
            f"Tag {key} of {label} removed",
            model=model_name,
            data={"key": key},
        )

    logger.info("Tag %r of %s (id %s) removed by %s", key, label, target.pk, actor)
