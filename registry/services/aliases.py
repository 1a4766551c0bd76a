"""Moving and removing aliases such as champion and challenger."""

from __future__ import annotations

import logging
import re

from django.db import transaction

from audit.services import record_action
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
        previous = ModelAlias.objects.filter(model=model, alias=alias).values_list("version__version", flat=True).first()
        if previous == version.version:
            return version
        ModelAlias.objects.update_or_create(
            model=model, alias=alias, defaults={"version": version, "updated_by": actor}
        )
        record_action(
            actor,
            "alias.set",
            model,
            f"Alias {alias} of {model.name} moved from v{previous} to v{version.version}"
            if previous
            else f"Alias {alias} of {model.name} set to v{version.version}",
            model=model.name,
            data={"alias": alias, "from_version": previous, "to_version": version.version},
        )
    logger.info("Alias %s of model %r now points to version %d (by %s)", alias, model.name, version.version, actor)
    return version


def delete_alias(model: RegisteredModel, alias: str, *, actor=None) -> None:
    with transaction.atomic():
        deleted, _ = ModelAlias.objects.filter(model=model, alias=alias).delete()
        if not deleted:
            raise NotFound(f"Model {model.name!r} has no alias {alias!r}.", field="alias")
        record_action(actor, "alias.delete", model, f"Alias {alias} of {model.name} removed", model=model.name, data={"alias": alias})
    logger.info("Alias %s of model %r removed (by %s)", alias, model.name, actor)
