"""Starting, checking and stopping model servers through their environment's runtime."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from django.conf import settings
from django.utils import timezone

from deployments.models import ModelServer
from deployments.runtimes import Health, RuntimeFailure, ServerHandle, ServerSpec, get_runtime
from registry.services.artifacts import unpack_artifact

logger = logging.getLogger("deployments.servers")

SMOKE_TIMEOUT_SECONDS = 30.0


def create_server(endpoint, version, resources: dict | None = None) -> ModelServer:
    return ModelServer.objects.create(
        endpoint=endpoint, version=version, runtime=endpoint.environment.runtime, resources=resources or {}
    )


def build_spec(server: ModelServer) -> ServerSpec:
    version = server.version
    config = server.endpoint.environment.runtime_config or {}
    return ServerSpec(
        server_id=server.pk,
        endpoint=server.endpoint.name,
        model=version.model.name,
        version=version.version,
        model_dir=unpack_artifact(version.artifact),
        artifact_sha256=version.artifact.sha256,
        model_name=server.endpoint.name,
        workers=int(config.get("workers", settings.PORTAL_SERVER_WORKERS)),
        max_batch_size=int(config.get("max_batch_size", 64)),
        # The release's limits win over the environment's defaults.
        memory_mb=server.resources.get("memory_mb", config.get("memory_mb")),
        cpus=server.resources.get("cpus", config.get("cpus")),
        labels={"mlops-portal.instance": settings.PORTAL_INSTANCE},
    )


def handle_of(server: ModelServer) -> ServerHandle:
    return ServerHandle(runtime=server.runtime, server_id=server.pk, url=server.url, ref=server.handle)


def builds_in_task(server: ModelServer) -> bool:
    """Return whether the server's runtime prepares slowly (an image build), so preparing runs in a build task."""
    return get_runtime(server.runtime).builds_images


def start_server(server: ModelServer, prepared: dict | None = None) -> None:
    """Prepare (unless `prepared` is given) and start a pending server; calling it again adopts the running one."""
    runtime = get_runtime(server.runtime)
    spec = build_spec(server)
    if prepared is None:
        prepared = runtime.prepare(spec, lambda line: logger.info("server %s: %s", server.pk, line))
    handle = runtime.start(spec, prepared)

    server.url = handle.url
    server.handle = handle.ref
    server.state = ModelServer.State.STARTING
    server.started_at = timezone.now()
    server.save(update_fields=["url", "handle", "state", "started_at"])


def check_server(server: ModelServer) -> Health:
    """Update a starting server to ready or failed from its health and a smoke prediction."""
    runtime = get_runtime(server.runtime)
    health = runtime.health(handle_of(server))

    if not health.alive:
        mark_failed(server, health.detail)
        return health
    if not health.ready:
        return health

    try:
        smoke_predict(server)
    except RuntimeFailure as exc:
        mark_failed(server, str(exc))
        return Health(alive=True, ready=False, detail=str(exc))

    server.state = ModelServer.State.READY
    server.ready_at = timezone.now()
    server.save(update_fields=["state", "ready_at"])
    logger.info("Server %s for endpoint %s v%s is ready at %s", server.pk, server.endpoint.name, server.version.version, server.url)
    return health


def smoke_predict(server: ModelServer) -> None:
    """Send the version's input example to the server and raise RuntimeFailure unless it predicts."""
    payload = server.version.input_example or example_from_signature(server.version.signature)
    if payload is None:
        logger.info("Server %s: no input example or column signature, so no smoke prediction", server.pk)
        return

    request = urllib.request.Request(
        f"{server.url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=SMOKE_TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")[:500]
        raise RuntimeFailure(f"The smoke prediction from the input example failed with status {exc.code}: {body}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeFailure(f"The smoke prediction from the input example failed: {exc}") from None


def example_from_signature(signature: dict | None) -> dict | None:
    """Build a one-row request from a column signature when the model has no saved example."""
    columns = (signature or {}).get("inputs") or []
    if not columns or any("name" not in column for column in columns):
        return None

    defaults = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False, "string": ""}
    row = [defaults.get(column.get("type"), 0) for column in columns]
    return {"dataframe_split": {"columns": [column["name"] for column in columns], "data": [row]}}


def mark_failed(server: ModelServer, reason: str) -> None:
    server.state = ModelServer.State.FAILED
    server.failure_reason = reason
    server.save(update_fields=["state", "failure_reason"])
    logger.warning("Server %s for endpoint %s failed: %s", server.pk, server.endpoint.name, reason)


def stop_server(server: ModelServer) -> None:
    """Stop the server's process or container; stopping a stopped server does nothing."""
    if server.state == ModelServer.State.STOPPED:
        return

    if server.handle:
        get_runtime(server.runtime).stop(handle_of(server))
    server.state = ModelServer.State.STOPPED
    server.stopped_at = timezone.now()
    server.save(update_fields=["state", "stopped_at"])
    logger.info("Stopped server %s (endpoint %s, v%s)", server.pk, server.endpoint.name, server.version.version)


def server_logs(server: ModelServer, tail: int = 200) -> str:
    if not server.handle:
        return ""
    try:
        return get_runtime(server.runtime).logs(handle_of(server), tail=tail)
    except RuntimeFailure as exc:
        return str(exc)
