"""Moving and removing aliases such as champion and challenger."""

from __future__ import annotations

import logging
import re

from django.db import transaction

from mlops_portal.errors import InvalidInput, NotFound
from registry.models import ModelAlias, ModelVersion, RegisteredModel

logger = logging.getLogger("registry.aliases")

ALIAS_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def set_alias(model: RegisteredModel, alias: str, version_number: int, *, actor=None) -> ModelVersion:
    if not ALIAS_PATTERN.match(alias):
        raise InvalidInput(
            f"Alias {alias!r} is invalid; use lower-case letters, digits, '-' and '_', starting with a letter or digit.",
            field="alias",
        )

    version = ModelVersion.objects.filter(model=model, version=version_number).first()
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {version_number}.", field="version")

    with transaction.atomic():
        ModelAlias.objects.update_or_create(
            model=model, alias=alias, defaults={"version": version, "updated_by": actor}
        )
    logger.info("Alias %s of model %r now points to version %d (by %s)", alias, model.name, version.version, actor)
    return version


def delete_alias(model: RegisteredModel, alias: str, *, actor=None) -> None:
    deleted, _ = ModelAlias.objects.filter(model=model, alias=alias).delete()
    if not deleted:
        raise NotFound(f"Model {model.name!r} has no alias {alias!r}.", field="alias")
    logger.info("Alias %s of model %r removed (by %s)", alias, model.name, actor)
