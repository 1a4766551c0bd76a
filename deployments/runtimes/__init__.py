"""Runtime lookup by name; each environment names the runtime its servers use."""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from deployments.runtimes.base import Health, Runtime, RuntimeFailure, ServerHandle, ServerSpec

__all__ = ["Health", "Runtime", "RuntimeFailure", "ServerHandle", "ServerSpec", "available_runtimes", "get_runtime"]


def available_runtimes() -> list[str]:
    """Names of the runtimes this portal can use with its current settings."""
    names = ["local"]
    if settings.DOCKER_HOST:
        names.append("docker")
    return names


def get_runtime(name: str) -> Runtime:
    if name == "local":
        from deployments.runtimes.local import LocalRuntime

        return LocalRuntime(
            settings.PORTAL_SERVER_DIR,
            code_dir=settings.BASE_DIR,
            bind_host=settings.PORTAL_LOCAL_BIND_HOST,
            advertise_host=settings.PORTAL_LOCAL_ADVERTISE_HOST,
        )
    if name == "docker":
        if not settings.DOCKER_HOST:
            raise RuntimeFailure(
                "The docker runtime is not enabled on this portal: set DOCKER_HOST on the web server and the "
                "workers (for example unix:///var/run/docker.sock), or choose the local runtime."
            )
        return _docker_runtime(
            settings.DOCKER_HOST,
            settings.PORTAL_DOCKER_BASE_IMAGE,
            settings.PORTAL_DOCKER_WHEELHOUSE,
            settings.PORTAL_DOCKER_INDEX_URL,
            settings.PORTAL_INSTANCE,
            settings.PORTAL_DOCKER_BUILD_TIMEOUT,
            settings.PORTAL_DOCKER_NETWORK,
            settings.PORTAL_DOCKER_PUBLISH_HOST,
        )
    raise RuntimeFailure(f"Runtime {name!r} is not available on this portal; choose one of: {', '.join(available_runtimes())}.")


@functools.lru_cache(maxsize=4)
def _docker_runtime(base_url, base_image, wheelhouse, index_url, instance, build_timeout, network, publish_host) -> Runtime:
    """Build one DockerRuntime per distinct configuration, so a worker keeps one engine connection pool."""
    from deployments.runtimes.docker import DockerRuntime

    return DockerRuntime(
        base_url=base_url,
        base_image=base_image,
        wheelhouse=Path(wheelhouse) if wheelhouse else None,
        index_url=index_url,
        instance=instance,
        build_timeout=build_timeout,
        network=network,
        publish_host=publish_host,
    )
