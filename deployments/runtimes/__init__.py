"""Runtime lookup by name; each environment names the runtime its servers use."""

from __future__ import annotations

from django.conf import settings

from deployments.runtimes.base import Health, Runtime, RuntimeFailure, ServerHandle, ServerSpec

__all__ = ["Health", "Runtime", "RuntimeFailure", "ServerHandle", "ServerSpec", "get_runtime"]


def get_runtime(name: str) -> Runtime:
    if name == "local":
        from deployments.runtimes.local import LocalRuntime

        return LocalRuntime(
            settings.PORTAL_SERVER_DIR,
            code_dir=settings.BASE_DIR,
            bind_host=settings.PORTAL_LOCAL_BIND_HOST,
            advertise_host=settings.PORTAL_LOCAL_ADVERTISE_HOST,
        )
    raise RuntimeFailure(f"Runtime {name!r} is not available on this portal.")
