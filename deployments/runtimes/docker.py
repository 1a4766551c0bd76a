"""Run model servers as containers through the Docker Engine API.

`prepare` builds one image per model version (see docker_image.py), `start`
runs it as a container named after the server id. Every image and container
carries the portal instance label, so one engine can serve several portals and
each can find, reconcile and remove only its own. Works against Docker and
against Podman's Docker-compatible API service. No Django imports.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.utils
from docker.models.containers import Container

from .base import Health, LogFn, Runtime, RuntimeFailure, ServerHandle, ServerSpec
from .docker_image import (
    LABEL_INSTANCE,
    LABEL_MODEL,
    LABEL_PREFIX,
    LABEL_VERSION,
    SERVER_PORT,
    ImageSources,
    build_image,
    create_build_context,
    slugify,
)

logger = logging.getLogger(__name__)

LABEL_SERVER_ID = f"{LABEL_PREFIX}.server-id"

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BASE_IMAGE = "localhost/mlops-portal-base:bookworm"
DEFAULT_SERVER_REQUIREMENTS = Path(__file__).with_name("server-requirements.txt")

READY_PATH = "/v2/health/ready"
HEALTH_TIMEOUT_SECONDS = 2.0

# Engine API calls other than builds; a build has its own time limit.
API_TIMEOUT_SECONDS = 60


class DockerRuntime(Runtime):
    """A runtime that builds an image per model version and runs it as a container.

    Containers publish the server port on `publish_host` (127.0.0.1 by
    default) with a port the engine picks. With `network`, containers also
    join that user network and the handle URL uses the container name, which
    the engine's DNS resolves for other containers on the network.
    """

    name = "docker"
    builds_images = True
    shared_view = True

    def __init__(
        self,
        *,
        base_url: str | None = None,
        base_image: str = DEFAULT_BASE_IMAGE,
        wheelhouse: Path | None = None,
        index_url: str | None = None,
        ca_bundle: Path | None = None,
        instance: str = "default",
        build_timeout: float = 900.0,
        network: str | None = None,
        publish_host: str | None = "127.0.0.1",
        server_package: Path | None = None,
        server_requirements: Path = DEFAULT_SERVER_REQUIREMENTS,
        restart_policy: dict[str, Any] | None = None,
        layer_cache: bool = True,
    ):
        """Configure the runtime; nothing connects to the engine until the first call.

        base_url: engine address such as unix:///run/podman.sock (default: DOCKER_HOST).
        wheelhouse, index_url: where pip finds packages during builds, at least one of them.
        ca_bundle: CA certificates for index_url, copied into the build.
        instance: portal instance name, stored in every label and image name.
        build_timeout: seconds one image build may take.
        publish_host: host address for the published port, or None to publish nothing.
        server_package: the `model_server` package folder copied into images.
        layer_cache: reuse cached layers of earlier builds; False rebuilds every step.
        """
        if network is None and publish_host is None:
            raise ValueError("publish_host=None needs a network, or the servers would be unreachable")

        self.instance = instance
        self.build_timeout = build_timeout
        self.layer_cache = layer_cache
        self.network = network
        self.publish_host = publish_host
        self.restart_policy = restart_policy or {"Name": "on-failure", "MaximumRetryCount": 3}
        self.sources = ImageSources(
            base_image=base_image,
            server_package=Path(server_package or REPOSITORY_ROOT / "model_server"),
            server_requirements=Path(server_requirements),
            wheelhouse=Path(wheelhouse) if wheelhouse is not None else None,
            index_url=index_url,
            ca_bundle=Path(ca_bundle) if ca_bundle is not None else None,
        )

        self._api_kwargs: dict[str, Any] = {"base_url": base_url} if base_url else docker.utils.kwargs_from_env()
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(**self._api_kwargs, timeout=API_TIMEOUT_SECONDS)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # Images

    def prepare(self, spec: ServerSpec, log: LogFn) -> dict[str, Any]:
        """Build the image for spec's model version, or reuse the one built from the same inputs."""
        base_image_id = self._base_image_id(log)
        context = create_build_context(spec, self.sources, base_image_id, self.instance)

        existing = self._find_image(context.tag)
        if existing is not None:
            log(f"Reusing image {context.tag}: it was built from the same inputs.")
            logger.info("server %s: reusing image %s", spec.server_id, context.tag)
            return {"image": context.tag, "image_id": existing.id, "digest": context.digest, "built": False}

        # NOTE: two workers that prepare the same inputs at once both build.
        # The later build takes the tag. If the two images differ, the earlier
        # one stays untagged, with the instance label, until remove_all().
        log(f"Building image {context.tag} from {self.sources.base_image}.")
        logger.info("server %s: building image %s", spec.server_id, context.tag)
        started = time.monotonic()
        build_image(self._api_kwargs, context, self.sources.base_image, self.build_timeout, log, self.layer_cache)
        seconds = time.monotonic() - started

        image = self._find_image(context.tag)
        if image is None:
            raise RuntimeFailure(f"The image build ended without errors, but image {context.tag} does not exist.")

        log(f"Built image {context.tag} in {seconds:.1f} s.")
        logger.info("server %s: built image %s (%s) in %.1f s", spec.server_id, context.tag, image.short_id, seconds)
        return {"image": context.tag, "image_id": image.id, "digest": context.digest, "built": True}

    def _base_image_id(self, log: LogFn) -> str:
        """Return the base image's id, pulling the image once when the engine does not have it."""
        base_image = self.sources.base_image
        try:
            return self.client.images.get(base_image).id
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as error:
            raise RuntimeFailure(f"The container engine is not reachable: {error}") from error

        log(f"Pulling base image {base_image}: the engine does not have it.")
        logger.info("pulling base image %s", base_image)
        try:
            return self.client.images.pull(base_image).id
        except docker.errors.DockerException as error:
            raise RuntimeFailure(
                f"Base image {base_image} not found on the engine, and pulling it failed ({error}). "
                "Pull or build it there (.ci/container-engine builds the default one), "
                "or set PORTAL_DOCKER_BASE_IMAGE to an image the engine has."
            ) from error

    def _find_image(self, tag: str):
        try:
            return self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None

    # Containers

    def container_name(self, server_id: int) -> str:
        return f"mlops-portal-{slugify(self.instance)}-server-{server_id}"

    def start(self, spec: ServerSpec, prepared: dict[str, Any]) -> ServerHandle:
        """Run the prepared image for spec, or adopt the container already there for spec.server_id.

        A stopped container with the prepared image is started again. A
        container with another image is removed and created anew from the
        prepared image, because that is the image the caller wants for the id.
        """
        name = self.container_name(spec.server_id)
        container = self._find_container(name)

        if container is not None and container.attrs.get("Image") != prepared["image_id"]:
            logger.warning(
                "server %s: replacing container %s, which runs image %s instead of %s",
                spec.server_id, container.short_id, container.attrs.get("Image"), prepared["image"],
            )
            container.remove(force=True)
            container = None

        if container is None:
            container = self._create_container(spec, prepared, name)
        else:
            logger.info("server %s: adopting container %s (%s)", spec.server_id, container.short_id, container.status)

        if container.status != "running":
            try:
                container.start()
            except docker.errors.APIError as error:
                logger.error("server %s: container %s failed to start: %s", spec.server_id, container.short_id, error)
                raise RuntimeFailure(f"Container {name} failed to start: {error.explanation or error}") from error
            logger.info("server %s: started container %s from %s", spec.server_id, container.short_id, prepared["image"])

        return self._handle(self._wait_for_port(container))

    def _create_container(self, spec: ServerSpec, prepared: dict[str, Any], name: str) -> Container:
        labels = {
            **spec.labels,
            LABEL_INSTANCE: self.instance,
            LABEL_SERVER_ID: str(spec.server_id),
            LABEL_MODEL: spec.model,
            LABEL_VERSION: str(spec.version),
            "mlops-portal.endpoint": spec.endpoint,
        }
        command = [
            "--name", spec.model_name,
            "--version", str(spec.version),
            "--workers", str(spec.workers),
            "--max-batch-size", str(spec.max_batch_size),
        ]
        options: dict[str, Any] = {}
        if self.publish_host is not None:
            options["ports"] = {f"{SERVER_PORT}/tcp": (self.publish_host,)}
        if self.network is not None:
            options["network"] = self.network
        if spec.memory_mb is not None:
            options["mem_limit"] = f"{spec.memory_mb}m"
        if spec.cpus is not None:
            options["nano_cpus"] = int(spec.cpus * 1e9)

        try:
            container = self.client.containers.create(
                prepared["image"],
                command=command,
                name=name,
                labels=labels,
                environment=spec.env,
                restart_policy=self.restart_policy,
                **options,
            )
        except docker.errors.APIError as error:
            if error.status_code != 409:
                raise RuntimeFailure(f"Creating container {name} failed: {error.explanation or error}") from error

            # Another worker created it between the lookup and this call.
            logger.info("server %s: container %s appeared meanwhile; adopting it", spec.server_id, name)
            container = self._find_container(name)
            if container is None:
                raise RuntimeFailure(
                    f"Creating container {name} failed with a name conflict, but no container has that name; retry start()."
                ) from error
            return container

        logger.info("server %s: created container %s (%s)", spec.server_id, name, container.short_id)
        return container

    def _find_container(self, name_or_id: str) -> Container | None:
        try:
            return self.client.containers.get(name_or_id)
        except docker.errors.NotFound:
            return None

    def _wait_for_port(self, container: Container, timeout: float = 10.0) -> Container:
        """Reload the container until the engine reports its published port."""
        deadline = time.monotonic() + timeout
        while True:
            container.reload()
            if self.publish_host is None or published_port(container) is not None:
                return container
            if container.status not in ("created", "running"):
                raise RuntimeFailure(f"Container {container.name} is {container.status} before it published its port.")
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"Container {container.name} published no port within {timeout:.0f} s.")
            time.sleep(0.1)

    def _handle(self, container: Container) -> ServerHandle:
        labels = container.labels
        host_port = published_port(container)
        host_url = f"http://{self.publish_host}:{host_port}" if host_port is not None else None
        network_url = f"http://{container.name}:{SERVER_PORT}" if self.network is not None else None
        return ServerHandle(
            runtime=self.name,
            server_id=int(labels[LABEL_SERVER_ID]),
            url=network_url or host_url,
            ref={
                "container_id": container.id,
                "container_name": container.name,
                "image": container.attrs.get("ImageName") or container.attrs["Config"]["Image"],
                "image_id": container.attrs.get("Image"),
                "host_port": host_port,
                "probe_url": host_url or network_url,
                "network": self.network,
                "status": container.status,
            },
        )

    # Health, logs, stop

    def health(self, handle: ServerHandle) -> Health:
        """Combine the container state with a readiness request to the server.

        The image's HEALTHCHECK runs only where the engine schedules it (Docker,
        or Podman with systemd), so the runtime sends the request itself.
        """
        container = self._find_container(handle.ref["container_id"])
        if container is None:
            return Health(alive=False, ready=False, detail=f"container {handle.ref['container_name']} not found")

        state = container.attrs["State"]
        if state.get("Status") != "running":
            detail = f"container {container.name} is {state.get('Status')} (exit code {state.get('ExitCode')})"
            if state.get("OOMKilled"):
                detail += "; killed for exceeding its memory limit"
            if state.get("Error"):
                detail += f"; {state['Error']}"
            return Health(alive=False, ready=False, detail=detail)

        url = handle.ref["probe_url"] + READY_PATH
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_SECONDS) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return Health(alive=True, ready=False, detail=f"no response from {url}: {reason}")

        if status != 200:
            return Health(alive=True, ready=False, detail=f"{url} returned status {status}")
        return Health(alive=True, ready=True, detail="ready")

    def logs(self, handle: ServerHandle, tail: int = 200) -> str:
        container = self._find_container(handle.ref["container_id"])
        if container is None:
            return ""
        return container.logs(tail=tail).decode(errors="replace")

    def stop(self, handle: ServerHandle, grace_seconds: float = 10.0) -> None:
        """Stop the container with its stop signal, kill it after grace_seconds, then remove it."""
        container = self._find_container(handle.ref["container_id"])
        if container is None:
            logger.info("server %s: container %s already gone", handle.server_id, handle.ref["container_name"])
            return

        try:
            container.stop(timeout=int(max(grace_seconds, 0)))
            container.remove(v=True, force=True)
        except docker.errors.NotFound:
            # Removed by someone else between the lookup and here.
            pass
        logger.info("server %s: stopped and removed container %s", handle.server_id, container.short_id)

    def list_servers(self, include_stopped: bool = False) -> list[ServerHandle]:
        """List this instance's server containers; include_stopped adds exited and created ones."""
        containers = self.client.containers.list(
            all=include_stopped, filters={"label": [f"{LABEL_INSTANCE}={self.instance}", LABEL_SERVER_ID]}
        )
        return [self._handle(container) for container in containers]

    def remove_all(self, images: bool = True) -> None:
        """Remove every container, and with images=True every image, labelled with this instance.

        For tests and for uninstalling; the base image carries no instance label and stays.
        """
        label = f"{LABEL_INSTANCE}={self.instance}"
        for container in self.client.containers.list(all=True, filters={"label": label}):
            container.remove(v=True, force=True)
            logger.info("removed container %s (%s)", container.name, container.short_id)

        if images:
            for image in self.client.images.list(filters={"label": label}):
                try:
                    self.client.images.remove(image.id, force=True)
                except docker.errors.ImageNotFound:
                    continue
                logger.info("removed image %s (%s)", ", ".join(image.tags) or "untagged", image.short_id)


def published_port(container: Container) -> int | None:
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{SERVER_PORT}/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None
