"""Checks of an environment's runtime and runtime_config, shared by the API and the admin."""

from __future__ import annotations

import math

from deployments.runtimes import available_runtimes
from mlops_portal.errors import InvalidInput

# Key: (whole numbers only, minimum, maximum, what the value is).
RUNTIME_CONFIG_LIMITS = {
    "workers": (True, 1, 64, "a whole number of worker processes per model server from 1 to 64, such as 2"),
    "max_batch_size": (True, 1, 4096, "a whole number of rows per batch from 1 to 4096, such as 64"),
    "memory_mb": (True, 64, 1024 * 1024, "a whole number of MiB from 64 to 1048576, such as 512"),
    "cpus": (False, 0.1, 256, "a number of CPUs from 0.1 to 256, such as 0.5 or 2"),
}


# Runtimes that apply memory and CPU limits; the local runtime starts plain processes.
RESOURCE_LIMITING_RUNTIMES = ("docker",)
RESOURCE_KEYS = ("memory_mb", "cpus")


def check_resources_supported(runtime: str, keys, field: str) -> None:
    """Raise InvalidInput when memory or CPU limits are given for a runtime that cannot apply them."""
    limits = [key for key in RESOURCE_KEYS if key in keys]
    if limits and runtime not in RESOURCE_LIMITING_RUNTIMES:
        raise InvalidInput(
            f"The {runtime} runtime cannot limit {' or '.join(limits)}, so the limit would be ignored. "
            f"Remove it, or use an environment on the {' or '.join(RESOURCE_LIMITING_RUNTIMES)} runtime.",
            field=field,
        )


def check_runtime(name: str) -> None:
    """Raise InvalidInput unless this portal's settings enable the runtime `name`."""
    if name in available_runtimes():
        return
    if name == "docker":
        raise InvalidInput(
            "The docker runtime is not enabled on this portal. To use it, set DOCKER_HOST on the web server "
            "and the workers, or choose local.",
            field="runtime",
        )
    raise InvalidInput(
        f"Runtime {name!r} is not available on this portal. Choose one of: {', '.join(available_runtimes())}.",
        field="runtime",
    )


def check_runtime_config(config) -> None:
    """Raise InvalidInput unless `config` is an object of known keys with values in range.

    Messages name the key, without the "runtime_config" prefix, because the
    API and the admin already show them under that field.
    """
    if not isinstance(config, dict):
        raise InvalidInput(
            f'Must be a JSON object such as {{"workers": 2, "memory_mb": 512}}, but got {type(config).__name__} {config!r}.',
            field="runtime_config",
        )

    unknown = sorted(set(config) - set(RUNTIME_CONFIG_LIMITS))
    if unknown:
        raise InvalidInput(
            f"Unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}. "
            f"The allowed keys are {', '.join(RUNTIME_CONFIG_LIMITS)}.",
            field=f"runtime_config.{unknown[0]}",
        )

    for key, value in config.items():
        whole, minimum, maximum, description = RUNTIME_CONFIG_LIMITS[key]
        if not _in_range(value, whole, minimum, maximum):
            raise InvalidInput(f"{key} must be {description}, but got {value!r}.", field=f"runtime_config.{key}")


def _in_range(value, whole: bool, minimum: float, maximum: float) -> bool:
    # bool is a subclass of int in Python, but true is not a number of workers.
    if isinstance(value, bool):
        return False
    if whole and not isinstance(value, int):
        return False
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return minimum <= value <= maximum
