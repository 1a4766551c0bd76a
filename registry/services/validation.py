"""Checking that a registered version loads and predicts before anyone deploys it."""

from __future__ import annotations

import logging
import subprocess
import sys

from django.db import transaction
from django.utils import timezone

from registry.models import ModelVersion
from registry.services.artifacts import unpack_artifact

logger = logging.getLogger("registry.validation")

CHECK_TIMEOUT_SECONDS = 300


def validate_version(version_id: int) -> str:
    """Load the version in a separate process and mark it ready or failed; return the new status.

    The check runs in a child process so that a model that crashes or hangs
    while loading cannot take the worker with it. NOTE: the child uses this
    worker's Python environment, so a model that needs packages installed only
    in its container image fails here although its image would serve it.
    """
    version = ModelVersion.objects.select_related("artifact", "model").get(pk=version_id)
    if version.status != ModelVersion.Status.PENDING:
        return version.status

    logger.info("Checking that %s (id %s) loads", version, version.pk)
    model_dir = unpack_artifact(version.artifact)
    command = [sys.executable, "-m", "model_server", "check", "--model-dir", str(model_dir)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return _finish(version, ModelVersion.Status.FAILED, f"Loading the model took more than {CHECK_TIMEOUT_SECONDS} s.")

    if completed.returncode == 0:
        return _finish(version, ModelVersion.Status.READY, "")

    lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else f"The model check exited with code {completed.returncode}."
    return _finish(version, ModelVersion.Status.FAILED, reason)


def _finish(version: ModelVersion, status: str, reason: str) -> str:
    with transaction.atomic():
        updated = ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.PENDING).update(
            status=status, status_reason=reason, updated_at=timezone.now()
        )
    if updated:
        logger.info("Version %s (id %s) is %s %s", version, version.pk, status, reason)
    return status
