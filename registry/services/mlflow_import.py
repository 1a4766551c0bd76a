"""Importing a whole registered model from MLflow: every version, its aliases, tags and description.

An import may run again at any time. Versions imported before are recognised by
their import key and skipped, tags and aliases that already match are left alone,
so a repeated import changes nothing and duplicates nothing.
"""

from __future__ import annotations

import dataclasses
import logging

from audit.services import record_action
from mlops_portal.errors import InvalidInput
from registry.models import ModelAlias, ModelVersion, RegisteredModel
from registry.services import aliases, lifecycle, mlflow_source, tags, versions

logger = logging.getLogger("registry.mlflow_import")

# MLflow versions in these states have no usable artifact yet, or never will.
_SKIPPED_STATUSES = ("PENDING_REGISTRATION", "FAILED_REGISTRATION")


@dataclasses.dataclass
class ImportResult:
    model: RegisteredModel
    created: list[ModelVersion] = dataclasses.field(default_factory=list)
    existing: list[ModelVersion] = dataclasses.field(default_factory=list)
    aliases_set: list[str] = dataclasses.field(default_factory=list)
    tags_set: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.aliases_set or self.tags_set)


def import_registered_model(
    mlflow_name: str, tracking_uri: str, *, model_name: str | None = None, actor=None
) -> ImportResult:
    """Import MLflow's registered model `mlflow_name` into the portal model `model_name` (default: the same name)."""
    mlflow_name = (mlflow_name or "").strip()
    if not mlflow_name:
        raise InvalidInput("The MLflow model name is empty; give the registered model's name in MLflow.", field="mlflow_model")
    _, tracking_uri = mlflow_source.check_uris(f"models:/{mlflow_name}/1", tracking_uri)
    mlflow_source.check_tracking_store(tracking_uri)
    model_name = versions.validate_model_name(model_name or mlflow_name)

    client = mlflow_source.client_for(tracking_uri)
    with mlflow_source.mlflow_errors(f"models:/{mlflow_name}", tracking_uri, field="mlflow_model"):
        registered = client.get_registered_model(mlflow_name)
        mlflow_versions = client.search_model_versions(_name_filter(mlflow_name))

    mlflow_versions = sorted(mlflow_versions, key=lambda entity: int(entity.version))
    result = _import_versions(client, mlflow_versions, model_name, tracking_uri, actor)
    if result is None:
        raise InvalidInput(f"MLflow model {mlflow_name!r} has no version that is ready to import.", field="mlflow_model")

    _sync_model_metadata(result, registered, actor)
    _sync_aliases(result, registered, tracking_uri, actor)

    record_action(
        actor,
        "model.import",
        result.model,
        f"Imported {mlflow_name} from MLflow: {len(result.created)} new version(s), "
        f"{len(result.existing)} imported before",
        model=result.model.name,
        data={
            "tracking_uri": tracking_uri,
            "mlflow_model": mlflow_name,
            "created": [version.version for version in result.created],
            "aliases_set": result.aliases_set,
            "tags_set": result.tags_set,
            "skipped": result.skipped,
        },
    )
    logger.info(
        "Imported MLflow model %r from %s into model id %s: %d new, %d existing, %d skipped",
        mlflow_name, tracking_uri, result.model.pk, len(result.created), len(result.existing), len(result.skipped),
    )
    return result


def _name_filter(name: str) -> str:
    """Build MLflow's search filter for one exact model name, quoting as its parser expects."""
    if "'" not in name:
        return f"name='{name}'"
    # NOTE: a name with both quote characters cannot be written in MLflow's filter syntax.
    return f'name="{name}"'


def _import_versions(client, mlflow_versions, model_name, tracking_uri, actor) -> ImportResult | None:
    """Register each MLflow version not imported before; return None when no version could be imported."""
    created, existing, skipped = [], [], []

    for entity in mlflow_versions:
        uri = f"models:/{entity.name}/{entity.version}"
        if str(entity.status) in _SKIPPED_STATUSES:
            skipped.append(f"{uri} ({entity.status})")
            continue

        found = versions.find_imported(model_name, tracking_uri, uri)
        if found is not None:
            existing.append(found)
            continue

        with mlflow_source.mlflow_errors(uri, tracking_uri, field="mlflow_model"):
            fetched = mlflow_source.describe_model_version(client, entity)
        created.append(versions.register_fetched(model_name, fetched, tracking_uri, actor=actor))

    if not created and not existing:
        return None
    model = (created or existing)[0].model
    return ImportResult(model=model, created=created, existing=existing, skipped=skipped)


def _sync_model_metadata(result: ImportResult, registered, actor) -> None:
    """Copy the MLflow model's description (when the portal's is empty) and its tags."""
    model = result.model
    if registered.description and not model.description:
        lifecycle.update_description(model, registered.description, actor=actor)

    current = dict(model.tags.values_list("key", "value"))
    for key, value in (registered.tags or {}).items():
        if current.get(key) != value:
            tags.set_tag(model, key, value, actor=actor)
            result.tags_set.append(key)


def _sync_aliases(result: ImportResult, registered, tracking_uri: str, actor) -> None:
    """Point each MLflow alias at the portal version imported from the same MLflow version."""
    by_key = {version.import_key: version for version in [*result.created, *result.existing]}
    current = dict(ModelAlias.objects.filter(model=result.model).values_list("alias", "version__version"))

    for alias, mlflow_version in (registered.aliases or {}).items():
        uri = f"models:/{registered.name}/{mlflow_version}"
        version: ModelVersion | None = by_key.get(versions.import_key(tracking_uri, uri))
        name = alias.lower()
        if version is None:
            result.skipped.append(f"alias {alias} ({uri} was not imported)")
            continue
        if not aliases.ALIAS_PATTERN.match(name):
            result.skipped.append(f"alias {alias} (not a valid portal alias)")
            continue
        if current.get(name) != version.version:
            aliases.set_alias(result.model, name, version.version, actor=actor)
            result.aliases_set.append(name)
