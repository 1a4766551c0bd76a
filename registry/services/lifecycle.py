"""Creating, editing, archiving and deleting registered models and versions."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q

from audit.services import record_action
from mlops_portal.errors import Conflict
from registry.models import Artifact, ModelVersion, RegisteredModel, normalize_model_name
from registry.services.versions import validate_model_name

logger = logging.getLogger("registry.lifecycle")

# Model server states in which a server may be receiving traffic.
RUNNING_SERVER_STATES = ("starting", "ready")


def create_model(name: str, *, description: str = "", actor=None) -> RegisteredModel:
    """Create a model; raise Conflict when a model with the same name (ignoring case and outer spaces) exists."""
    cleaned = validate_model_name(name, field="name")
    existing = RegisteredModel.objects.filter(name_key=normalize_model_name(cleaned)).first()
    if existing is not None:
        raise Conflict(
            f"A model named {existing.name!r} exists already; names that differ only in letter case "
            "or outer spaces are the same name.",
            field="name",
            details={"model": existing.pk},
        )

    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(name=cleaned, description=description, owner=actor)
            record_action(actor, "model.create", model, f"Created model {model.name}", model=model.name)
    except IntegrityError:
        raise Conflict(f"A model named {cleaned!r} was created at the same time.", field="name") from None

    logger.info("Created registered model %r (id %s) by %s", model.name, model.pk, actor)
    return model


def update_description(target: RegisteredModel | ModelVersion, description: str, *, actor=None):
    """Replace the description of a model or a version, and record the old and new text."""
    if isinstance(target, RegisteredModel):
        action, label, model_name = "model.update", target.name, target.name
    else:
        action, label, model_name = "version.update", str(target), target.model.name

    with transaction.atomic():
        previous = target.description
        target.description = description
        target.save(update_fields=["description", "updated_at"])
        record_action(
            actor, action, target, f"Description of {label} changed", model=model_name,
            data={"from_description": previous, "to_description": description},
        )

    logger.info("Description of %s (id %s) changed by %s", label, target.pk, actor)
    return target


def set_archived(version: ModelVersion, archived: bool, *, actor=None) -> ModelVersion:
    """Archive or restore a version; an archived version is offered for no new release."""
    if version.archived == archived:
        return version

    with transaction.atomic():
        version.archived = archived
        version.save(update_fields=["archived", "updated_at"])
        verb = "archive" if archived else "unarchive"
        record_action(
            actor, f"version.{verb}", version, f"{version} {verb}d", model=version.model.name,
            data={"version": version.version},
        )
    logger.info("Version %s (id %s) %sd by %s", version, version.pk, verb, actor)
    return version


def serving_endpoints(version: ModelVersion) -> list[str]:
    """Return the names of the endpoints that route to, or run a server for, this version."""
    from deployments.models import ModelServer, RouteBackend

    routed = RouteBackend.objects.filter(server__version=version).values_list("endpoint__name", flat=True)
    running = ModelServer.objects.filter(version=version, state__in=RUNNING_SERVER_STATES).values_list(
        "endpoint__name", flat=True
    )
    return sorted(set(routed) | set(running))


def delete_version(version: ModelVersion, *, actor=None) -> None:
    """Delete a version that nothing serves or refers to, with its aliases and tags.

    Raises Conflict (409) naming the endpoints when one serves the version, and
    naming the releases when release history refers to it. Such a version is
    retired by archiving it. The artifact file is deleted once no version uses it.
    """
    from deployments.models import Release

    endpoints = serving_endpoints(version)
    if endpoints:
        raise Conflict(
            f"{version} is served by endpoint{'s' if len(endpoints) > 1 else ''} {', '.join(endpoints)}; "
            "release another version there first, or archive this one.",
            field="version",
            details={"endpoints": endpoints},
        )

    releases = list(
        Release.objects.filter(Q(version=version) | Q(stable_version=version)).order_by("pk").values_list("pk", flat=True)
    )
    if releases:
        raise Conflict(
            f"{version} is part of the history of release{'s' if len(releases) > 1 else ''} "
            f"{', '.join(map(str, releases))}, which must stay complete; archive the version instead.",
            field="version",
            details={"releases": releases},
        )

    model = version.model
    artifact_id = version.artifact_id
    with transaction.atomic():
        try:
            version.delete()
        except ProtectedError as exc:
            # A server row (stopped, but kept as history) still refers to the version.
            raise Conflict(
                f"{version} is still referred to by {len(exc.protected_objects)} deployment record(s); "
                "archive the version instead.",
                field="version",
            ) from None
        record_action(
            actor, "version.delete", model, f"Deleted {model.name} v{version.version}", model=model.name,
            data={"version": version.version},
        )
        transaction.on_commit(lambda: _delete_unused_artifact(artifact_id))

    logger.info("Version %s v%d of model id %s deleted by %s", model.name, version.version, model.pk, actor)


def _delete_unused_artifact(artifact_id: int | None) -> None:
    """Delete an artifact row and its file when no version uses it any more."""
    if artifact_id is None:
        return

    with transaction.atomic():
        artifact = Artifact.objects.select_for_update().filter(pk=artifact_id).first()
        if artifact is None or artifact.versions.exists():
            return
        name = artifact.file.name
        artifact.delete()
        transaction.on_commit(lambda: artifact.file.storage.delete(name))

    logger.info("Deleted unused artifact %s (%s)", artifact.sha256, name)
