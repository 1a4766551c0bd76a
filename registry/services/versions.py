"""Registering model versions from uploads and from MLflow, and resolving references to them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.db import transaction

from audit.services import record_action
from mlops_portal.errors import InvalidInput, NotFound
from registry.models import ModelAlias, ModelVersion, RegisteredModel, VersionTag, normalize_model_name
from registry.services.artifacts import ModelArchive, inspect_model_zip, store_artifact

logger = logging.getLogger("registry.versions")

MAX_NAME_LENGTH = 256
_MODEL_URI = re.compile(r"^models:/(?P<name>.+?)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def validate_model_name(name: str, field: str = "model") -> str:
    """Return the name without outer spaces, or raise InvalidInput naming the rule it breaks."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInput("The model name is empty; give a name such as 'fraud-detector'.", field=field)
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The model name has {len(cleaned)} characters; at most {MAX_NAME_LENGTH} are allowed.", field=field)
    if not cleaned.isprintable():
        raise InvalidInput("The model name contains control characters; use printable characters only.", field=field)
    return cleaned


def get_or_create_model(name: str, actor=None) -> RegisteredModel:
    cleaned = validate_model_name(name)
    model, created = RegisteredModel.objects.get_or_create(
        name_key=normalize_model_name(cleaned),
        defaults={"name": cleaned, "owner": actor},
    )
    if created:
        record_action(actor, "model.create", model, f"Created model {model.name}", model=model.name)
        logger.info("Created registered model %r (id %s)", model.name, model.pk)
    return model


def register_from_zip(
    model_name: str,
    zip_path: Path,
    *,
    actor=None,
    source: str = ModelVersion.Source.UPLOAD,
    description: str = "",
    mlflow: dict | None = None,
    tags: dict | None = None,
) -> ModelVersion:
    """Check a zipped MLflow model, store it and create the next version of `model_name`.

    Everything happens in one transaction, so a failure leaves no model, version
    or artifact row behind. The version starts as pending; a worker then checks
    that the model loads and marks it ready or failed.
    """
    archive = inspect_model_zip(zip_path)
    metadata = _metadata_from_mlmodel(archive)
    mlflow = mlflow or {}

    with transaction.atomic():
        model = get_or_create_model(model_name, actor)
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        if mlflow.get("import_key"):
            # A concurrent import of the same MLflow version committed while this one downloaded.
            earlier = ModelVersion.objects.filter(model=model, import_key=mlflow["import_key"]).first()
            if earlier is not None:
                return earlier
        artifact = store_artifact(zip_path, archive.model_root)

        model.last_version += 1
        model.save(update_fields=["last_version", "updated_at"])

        version = ModelVersion.objects.create(
            model=model,
            version=model.last_version,
            artifact=artifact,
            source=source,
            description=description,
            created_by=actor,
            source_uri=mlflow.get("source_uri", ""),
            tracking_uri=mlflow.get("tracking_uri", ""),
            mlflow_run_id=mlflow.get("run_id", ""),
            mlflow_model_id=mlflow.get("model_id", ""),
            metrics=mlflow.get("metrics", {}),
            params=mlflow.get("params", {}),
            import_key=mlflow.get("import_key", ""),
            **metadata,
        )
        VersionTag.objects.bulk_create(
            VersionTag(version=version, key=str(key)[:250], value=str(value)[:5000]) for key, value in (tags or {}).items()
        )

        record_action(
            actor,
            "version.register",
            version,
            f"Registered {model.name} v{version.version} from {source}",
            model=model.name,
            data={"version": version.version, "artifact_sha256": artifact.sha256, "source_uri": version.source_uri},
        )

        from registry.tasks import validate_version

        transaction.on_commit(lambda: validate_version.delay(version.pk))

    logger.info("Registered %s version %d (id %s) from %s", model.name, version.version, version.pk, source)
    return version


def _metadata_from_mlmodel(archive: ModelArchive) -> dict:
    mlmodel = archive.mlmodel
    flavors = mlmodel["flavors"]
    if "python_function" not in flavors:
        raise InvalidInput(
            f"The model has flavors {', '.join(sorted(flavors))} but no python_function flavor, "
            "so no model server can load it. Save it with an MLflow flavor that supports pyfunc.",
            field="artifact",
        )

    return {
        "flavors": flavors,
        "signature": parse_signature(mlmodel),
        "input_example": _serving_payload(archive),
    }


def parse_signature(mlmodel: dict) -> dict | None:
    """Return the MLmodel signature with its JSON strings decoded, or None when it has none."""
    raw = mlmodel.get("signature")
    if not raw:
        return None

    decoded = {}
    for key in ("inputs", "outputs", "params"):
        value = raw.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise InvalidInput(f"The MLmodel signature's {key} is not valid JSON.", field="artifact") from None
        decoded[key] = value
    return decoded


def _serving_payload(archive: ModelArchive) -> dict | None:
    """Return a request body for /invocations built from the saved input example."""
    if isinstance(archive.serving_input_example, dict):
        return archive.serving_input_example

    example = archive.input_example
    if example is None:
        return None

    info = archive.mlmodel.get("saved_input_example_info") or {}
    if info.get("type") == "dataframe":
        if info.get("pandas_orient") == "records" or isinstance(example, list):
            return {"dataframe_records": example}
        return {"dataframe_split": example}
    return {"inputs": example}


def register_upload(model_name: str, uploaded_file, *, actor=None, description: str = "") -> ModelVersion:
    """Register a version from an uploaded zip (a Django UploadedFile)."""
    if hasattr(uploaded_file, "temporary_file_path"):
        return register_from_zip(model_name, Path(uploaded_file.temporary_file_path()), actor=actor, description=description)

    with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
        for chunk in uploaded_file.chunks():
            handle.write(chunk)
        handle.flush()
        return register_from_zip(model_name, Path(handle.name), actor=actor, description=description)


def register_from_mlflow(
    model_name: str,
    model_uri: str,
    tracking_uri: str,
    *,
    actor=None,
    description: str = "",
) -> ModelVersion:
    """Register the model behind an MLflow URI as a new version, or return the version imported before."""
    version, _ = import_version(model_name, model_uri, tracking_uri, actor=actor, description=description)
    return version


def import_version(
    model_name: str,
    model_uri: str,
    tracking_uri: str,
    *,
    actor=None,
    description: str = "",
) -> tuple[ModelVersion, bool]:
    """Import one model from an MLflow tracking server or store; return (version, created).

    A URI that resolves to a version imported before into the same model (the
    same MLflow version, also when reached through another alias) returns that
    version unchanged.
    """
    from registry.services import mlflow_source

    model_uri, tracking_uri = mlflow_source.check_uris(model_uri, tracking_uri)
    validate_model_name(model_name)
    fetched = mlflow_source.describe_model(model_uri, tracking_uri)
    existing = find_imported(model_name, tracking_uri, fetched.canonical_uri)
    if existing is not None:
        logger.info("%s from %s was imported before as %s (id %s)", fetched.canonical_uri, tracking_uri, existing, existing.pk)
        return existing, False

    version = register_fetched(model_name, fetched, tracking_uri, actor=actor, description=description)
    return version, True


def import_key(tracking_uri: str, canonical_uri: str) -> str:
    return hashlib.sha256(f"{tracking_uri}\n{canonical_uri}".encode()).hexdigest()


def find_imported(model_name: str, tracking_uri: str, canonical_uri: str) -> ModelVersion | None:
    return (
        ModelVersion.objects.select_related("model")
        .filter(model__name_key=normalize_model_name(model_name), import_key=import_key(tracking_uri, canonical_uri))
        .first()
    )


def register_fetched(model_name: str, fetched, tracking_uri: str, *, actor=None, description: str = "") -> ModelVersion:
    """Download a described MLflow model and register it; `fetched` is an mlflow_source.FetchedModel."""
    from registry.services import mlflow_source

    workdir = Path(tempfile.mkdtemp(prefix="mlflow-import-"))
    try:
        mlflow_source.download_model(fetched, tracking_uri, workdir / "model")
        zip_path = workdir / "model.zip"
        zip_directory(fetched.path, zip_path)
        return register_from_zip(
            model_name,
            zip_path,
            actor=actor,
            source=ModelVersion.Source.MLFLOW,
            description=description or fetched.description,
            tags=fetched.tags,
            mlflow={
                "source_uri": fetched.canonical_uri,
                "tracking_uri": tracking_uri,
                "run_id": fetched.run_id,
                "model_id": fetched.model_id,
                "metrics": fetched.metrics,
                "params": fetched.params,
                "import_key": import_key(tracking_uri, fetched.canonical_uri),
            },
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def zip_directory(folder: Path, zip_path: Path) -> None:
    """Zip a folder with sorted entries and fixed timestamps, so equal content gives an equal digest."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                if path.is_symlink():
                    continue
                info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with open(path, "rb") as source, archive.open(info, "w") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)


def resolve_version(reference: str, field: str = "version") -> ModelVersion:
    """Find a version from `models:/NAME/VERSION` or `models:/NAME@ALIAS`."""
    match = _MODEL_URI.match(reference or "")
    if match is None:
        raise InvalidInput(
            f"{reference!r} is not a model version reference; use models:/NAME/VERSION or models:/NAME@ALIAS.",
            field=field,
        )
    return get_version(match["name"], version=match["version"], alias=match["alias"], field=field)


def find_model(reference: str, field: str = "model") -> RegisteredModel:
    """Return the model that a URL path segment names: its id when all digits, else its name.

    A name that consists of digits only cannot be distinguished from an id, and
    servers decode %2F to '/' before routing, so such models are addressed by id.
    Clients find the id with GET /api/v1/models/?name=NAME.
    """
    reference = reference or ""
    if reference.isascii() and reference.isdigit():
        model = RegisteredModel.objects.filter(pk=int(reference)).first()
        if model is None:
            raise NotFound(
                f"No registered model has id {reference}. A path segment of digits is an id; "
                "create a model whose name is digits with POST /api/v1/models/.",
                field=field,
            )
        return model

    return get_model_by_name(reference, field=field)


def get_model_by_name(model_name: str, field: str = "model") -> RegisteredModel:
    model = RegisteredModel.objects.filter(name_key=normalize_model_name(model_name)).first()
    if model is None:
        raise NotFound(f"No registered model is named {model_name!r}.", field=field)
    return model


def get_version(model_name: str, *, version=None, alias: str | None = None, field: str = "version") -> ModelVersion:
    model = get_model_by_name(model_name, field=field)

    if alias is not None:
        found = ModelAlias.objects.select_related("version__model").filter(model=model, alias=alias).first()
        if found is None:
            raise NotFound(f"Model {model.name!r} has no alias {alias!r}.", field=field)
        return found.version

    try:
        number = int(version)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"Version {version!r} of model {model.name!r} is not a number; give a version number or an alias.",
            field=field,
        ) from None
    return get_version_of(model, number, field=field)


def get_version_of(model: RegisteredModel, number: int, field: str = "version") -> ModelVersion:
    found = ModelVersion.objects.select_related("model").filter(model=model, version=number).first()
    if found is None:
        raise NotFound(f"Model {model.name!r} has no version {number}.", field=field)
    return found
