"""Fetching models and their metadata from an MLflow tracking server or store.

mlflow is imported inside the functions: importing it costs more than a second,
and only imports need it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from mlops_portal.errors import InvalidInput

logger = logging.getLogger("registry.mlflow")

_SUPPORTED = re.compile(r"^(models:/.+|runs:/[0-9a-f]+/.+)$")
_MODEL_REFERENCE = re.compile(r"^models:/(?P<name>.+?)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
_LOGGED_MODEL = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)$")
_RUN = re.compile(r"^runs:/(?P<run_id>[0-9a-f]+)/")


@dataclasses.dataclass
class FetchedModel:
    path: Path
    run_id: str = ""
    model_id: str = ""
    description: str = ""
    metrics: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)


def download_model(model_uri: str, tracking_uri: str, destination: Path) -> FetchedModel:
    """Download the model behind `model_uri` into `destination` and collect its run metrics and params."""
    model_uri = (model_uri or "").strip()
    tracking_uri = (tracking_uri or "").strip()
    if not _SUPPORTED.match(model_uri):
        raise InvalidInput(
            f"{model_uri!r} is not a supported MLflow model URI; use models:/NAME@ALIAS, "
            "models:/NAME/VERSION, models:/m-<model id> or runs:/<run id>/<path>.",
            field="mlflow_uri",
        )
    if not tracking_uri:
        raise InvalidInput(
            "The tracking URI is missing; give the MLflow tracking server or store, such as "
            "http://127.0.0.1:5000 or sqlite:///mlflow.db.",
            field="tracking_uri",
        )

    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        fetched = _describe(client, model_uri)
        destination.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(destination), tracking_uri=tracking_uri
        )
    except MlflowException as exc:
        logger.info("MLflow import of %s from %s failed: %s", model_uri, tracking_uri, exc.message)
        raise InvalidInput(f"MLflow could not provide {model_uri}: {exc.message}", field="mlflow_uri") from None
    except OSError as exc:
        raise InvalidInput(f"MLflow could not provide {model_uri}: {exc}", field="mlflow_uri") from None

    fetched.path = Path(local)
    if not (fetched.path / "MLmodel").exists():
        raise InvalidInput(f"{model_uri} has no MLmodel file; point the URI at a model, not a run folder.", field="mlflow_uri")
    return fetched


def _describe(client, model_uri: str) -> FetchedModel:
    fetched = FetchedModel(path=Path())
    match = _MODEL_REFERENCE.match(model_uri)
    logged = _LOGGED_MODEL.match(model_uri)

    if logged:
        fetched.model_id = logged["model_id"]
    elif match:
        if match["alias"]:
            model_version = client.get_model_version_by_alias(match["name"], match["alias"])
        else:
            model_version = client.get_model_version(match["name"], match["version"])
        fetched.run_id = model_version.run_id or ""
        fetched.description = model_version.description or ""
        source = _LOGGED_MODEL.match(model_version.source or "")
        fetched.model_id = source["model_id"] if source else ""
    else:
        fetched.run_id = _RUN.match(model_uri)["run_id"]

    if fetched.run_id:
        run = client.get_run(fetched.run_id)
        fetched.metrics = dict(run.data.metrics)
        fetched.params = dict(run.data.params)
    if fetched.model_id and not fetched.metrics:
        logged_model = client.get_logged_model(fetched.model_id)
        fetched.metrics = {metric.key: metric.value for metric in logged_model.metrics or []}
        fetched.params = dict(logged_model.params or {})
    return fetched
