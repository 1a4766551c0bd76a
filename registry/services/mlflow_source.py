"""Fetching models and their metadata from an MLflow tracking server or store.

mlflow is imported inside the functions: importing it costs more than a second,
and only imports need it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from mlops_portal.env import url_without_password
from mlops_portal.errors import InvalidInput

logger = logging.getLogger("registry.mlflow")

_SUPPORTED = re.compile(r"^(models:/.+|runs:/[0-9a-f]+/.+)$")
_MODEL_REFERENCE = re.compile(r"^models:/(?P<name>.+?)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
_LOGGED_MODEL = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)$")
_RUN = re.compile(r"^runs:/(?P<run_id>[0-9a-f]+)/")
# Default ports of the tracking URI schemes that reach a server over TCP. A
# database scheme may carry a driver, such as postgresql+psycopg.
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


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


def check_tracking_store(tracking_uri: str) -> None:
    """Raise InvalidInput on `tracking_uri` unless its sqlite file exists or its server accepts a connection.

    MLflow would create a missing sqlite database (and its folders) and then
    report the model as not found, and it retries an unreachable server for
    minutes. Other schemes, such as file stores, go to MLflow unchecked.
    """
    scheme = urlsplit(tracking_uri).scheme.lower()
    if scheme == "sqlite":
        _check_sqlite_file(tracking_uri)
        return

    # NOTE: a database server that accepts the connection but rejects the login
    # or lacks the database still costs about 100 s, because MLflow 3.17 retries
    # creating its SQLAlchemy engine 10 times (mlflow/store/db/utils.py).
    base_scheme = scheme.split("+", 1)[0]
    if base_scheme in _DEFAULT_PORTS:
        _check_connection(tracking_uri, _DEFAULT_PORTS[base_scheme])


def _check_sqlite_file(tracking_uri: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(tracking_uri).database
    except ArgumentError:
        raise InvalidInput(
            f"{tracking_uri!r} is not a valid sqlite URI; use sqlite:////absolute/path/mlflow.db.",
            field="tracking_uri",
        ) from None

    if not database or database == ":memory:":
        raise InvalidInput(
            f"{tracking_uri!r} names an in-memory sqlite database, which has no MLflow models; "
            "give the MLflow database file, such as sqlite:////srv/mlflow/mlflow.db.",
            field="tracking_uri",
        )

    path = Path(database)
    working_directory = Path.cwd()
    if path.is_file():
        return
    if path.is_absolute():
        raise InvalidInput(
            f"No MLflow database at {path}; give the path of an existing MLflow sqlite file in tracking_uri.",
            field="tracking_uri",
        )
    raise InvalidInput(
        f"No MLflow database at {working_directory / path}; relative sqlite paths resolve against "
        f"the portal's working directory {working_directory}.",
        field="tracking_uri",
    )


def _check_connection(tracking_uri: str, default_port: int) -> None:
    parts = urlsplit(tracking_uri)
    redacted_uri = url_without_password(tracking_uri)
    try:
        port = parts.port or default_port
    except ValueError:
        raise InvalidInput(f"{redacted_uri!r} has an invalid port; check tracking_uri.", field="tracking_uri") from None
    if not parts.hostname:
        raise InvalidInput(f"{redacted_uri!r} has no host; check tracking_uri.", field="tracking_uri")

    timeout = settings.PORTAL_MLFLOW_CONNECT_TIMEOUT
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = _connection_failure(exc) or str(exc)
        logger.info("MLflow tracking store %s is unreachable: %s", redacted_uri, exc)
        raise _unreachable(redacted_uri, reason) from None


def _unreachable(redacted_uri: str, reason: str) -> InvalidInput:
    scheme = urlsplit(redacted_uri).scheme.lower()
    store_kind = "tracking server" if scheme in ("http", "https") else "database"
    return InvalidInput(
        f"Cannot connect to the MLflow {store_kind} at {redacted_uri} ({reason}); check tracking_uri.",
        field="tracking_uri",
    )


def _connection_failure(exc: BaseException) -> str | None:
    """Describe why a connection failed, from the first socket error in an exception chain; None if there is none."""
    seen = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "host name not found"
        if isinstance(current, TimeoutError):
            return f"timed out after {settings.PORTAL_MLFLOW_CONNECT_TIMEOUT:g} s"
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return None


def client_for(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def describe_model(model_uri: str, tracking_uri: str) -> FetchedModel:
    """Look up the lineage of the model behind `model_uri` without downloading it."""
    model_uri, tracking_uri = check_uris(model_uri, tracking_uri)
    check_tracking_store(tracking_uri)
    with mlflow_errors(model_uri, tracking_uri):
        return _describe(client_for(tracking_uri), model_uri)


def download_model(fetched: FetchedModel, tracking_uri: str, destination: Path) -> FetchedModel:
    """Download the model that `fetched` describes into `destination`."""
    import mlflow.artifacts

    with mlflow_errors(fetched.canonical_uri, tracking_uri):
        destination.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=_artifact_location(client_for(tracking_uri), fetched.canonical_uri),
            dst_path=str(destination),
            tracking_uri=tracking_uri,
        )

    fetched.path = Path(local)
    if not (fetched.path / "MLmodel").exists():
        raise InvalidInput(
            f"{fetched.canonical_uri} has no MLmodel file; point the URI at a model, not a run folder.",
            field="mlflow_uri",
        )
    return fetched


def _artifact_location(client, canonical_uri: str) -> str:
    """Return where the model's files are stored, so the download needs no models:/ lookup.

    For models:/ URIs, MLflow 3.17's download builds its own MlflowClient from
    the process-wide tracking URI (mlflow.set_tracking_uri), not from the
    tracking_uri argument, so it could read another store.
    """
    logged = _LOGGED_MODEL.match(canonical_uri)
    if logged:
        return client.get_logged_model(logged["model_id"]).artifact_location
    match = _MODEL_REFERENCE.match(canonical_uri)
    if match and match["version"]:
        return client.get_model_version_download_uri(match["name"], match["version"])
    return canonical_uri


@contextlib.contextmanager
def mlflow_errors(model_uri: str, tracking_uri: str, field: str = "mlflow_uri"):
    """Turn MLflow's and the file system's errors into InvalidInput naming `field`.

    A connection or timeout failure names tracking_uri instead, with the reason
    in place of the HTTP client's text.
    """
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        logger.info("MLflow request for %s at %s failed: %s", model_uri, tracking_uri, exc.message)
        http_error = exc.__cause__ or exc.__context__
        redacted_uri = url_without_password(tracking_uri)
        if isinstance(http_error, requests.exceptions.Timeout):
            raise InvalidInput(
                f"The request to the MLflow tracking server at {redacted_uri} timed out after "
                f"{settings.MLFLOW_HTTP_REQUEST_TIMEOUT} s (MLFLOW_HTTP_REQUEST_TIMEOUT); "
                "check that the server is running, or raise that limit.",
                field="tracking_uri",
            ) from None
        if isinstance(http_error, requests.exceptions.ConnectionError):
            raise _unreachable(redacted_uri, _connection_failure(http_error) or "connection failed") from None
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
