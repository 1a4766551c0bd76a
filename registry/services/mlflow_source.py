"""Fetching models and their metadata from an MLflow tracking server or store.

mlflow is imported inside the functions: importing it costs more than a second,
and only imports need it.
"""

from __future__ import annotations

import contextlib
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
    """An MLflow model's lineage and, once downloaded, its local folder."""

    # The reference that stays put: models:/NAME/VERSION for a registered
    # version (also when asked for by alias), else the URI as given.
    canonical_uri: str
    path: Path | None = None
    run_id: str = ""
    model_id: str = ""
    description: str = ""
    metrics: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    tags: dict = dataclasses.field(default_factory=dict)


def check_uris(model_uri: str, tracking_uri: str) -> tuple[str, str]:
    """Return both URIs without outer spaces, or raise InvalidInput naming the one that is unusable."""
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
    return model_uri, tracking_uri


def client_for(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def describe_model(model_uri: str, tracking_uri: str) -> FetchedModel:
    """Look up the lineage of the model behind `model_uri` without downloading it."""
    model_uri, tracking_uri = check_uris(model_uri, tracking_uri)
    with mlflow_errors(model_uri, tracking_uri):
        return _describe(client_for(tracking_uri), model_uri)


def download_model(fetched: FetchedModel, tracking_uri: str, destination: Path) -> FetchedModel:
    """Download the model that `fetched` describes into `destination`."""
    import mlflow.artifacts

    with mlflow_errors(fetched.canonical_uri, tracking_uri):
        destination.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=fetched.canonical_uri, dst_path=str(destination), tracking_uri=tracking_uri
        )

    fetched.path = Path(local)
    if not (fetched.path / "MLmodel").exists():
        raise InvalidInput(
            f"{fetched.canonical_uri} has no MLmodel file; point the URI at a model, not a run folder.",
            field="mlflow_uri",
        )
    return fetched


@contextlib.contextmanager
def mlflow_errors(model_uri: str, tracking_uri: str, field: str = "mlflow_uri"):
    """Turn MLflow's and the file system's errors into InvalidInput naming `field`."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        logger.info("MLflow request for %s at %s failed: %s", model_uri, tracking_uri, exc.message)
        raise InvalidInput(f"MLflow could not provide {model_uri}: {exc.message}", field=field) from None
    except OSError as exc:
        logger.info("MLflow request for %s at %s failed: %s", model_uri, tracking_uri, exc)
        raise InvalidInput(f"MLflow could not provide {model_uri}: {exc}", field=field) from None


def describe_model_version(client, model_version) -> FetchedModel:
    """Collect the lineage of an MLflow ModelVersion entity."""
    fetched = FetchedModel(canonical_uri=f"models:/{model_version.name}/{model_version.version}")
    fetched.run_id = model_version.run_id or ""
    fetched.description = model_version.description or ""
    fetched.tags = dict(model_version.tags or {})
    source = _LOGGED_MODEL.match(model_version.source or "")
    fetched.model_id = source["model_id"] if source else ""
    _add_run_data(client, fetched)
    return fetched


def _describe(client, model_uri: str) -> FetchedModel:
    match = _MODEL_REFERENCE.match(model_uri)
    logged = _LOGGED_MODEL.match(model_uri)

    if logged:
        fetched = FetchedModel(canonical_uri=model_uri, model_id=logged["model_id"])
    elif match:
        if match["alias"]:
            model_version = client.get_model_version_by_alias(match["name"], match["alias"])
        else:
            model_version = client.get_model_version(match["name"], match["version"])
        return describe_model_version(client, model_version)
    else:
        fetched = FetchedModel(canonical_uri=model_uri.rstrip("/"), run_id=_RUN.match(model_uri)["run_id"])

    _add_run_data(client, fetched)
    return fetched


def _add_run_data(client, fetched: FetchedModel) -> None:
    """Copy metrics and params from the run, or from the logged model when the run has none."""
    if fetched.run_id:
        run = client.get_run(fetched.run_id)
        fetched.metrics = dict(run.data.metrics)
        fetched.params = dict(run.data.params)
    if fetched.model_id and not fetched.metrics:
        logged_model = client.get_logged_model(fetched.model_id)
        fetched.metrics = {metric.key: metric.value for metric in logged_model.metrics or []}
        fetched.params = dict(logged_model.params or {})
