"""Sending an endpoint back to one of its earlier versions, from the endpoint page."""

from __future__ import annotations

import logging

from deployments.models import Endpoint, Release
from deployments.services import releases
from deployments.services.events import record_event
from registry.models import ModelVersion

logger = logging.getLogger("deployments.restore")

State = Release.State


def restore_version(endpoint: Endpoint, version: ModelVersion, *, actor, reason: str) -> Release:
    """Send the endpoint's traffic back to `version` and return the release that does it.

    When the endpoint's latest release was promoted and replaced `version`,
    this is that release's rollback: one route-table change while the old
    server still runs. Any other earlier version gets a new blue/green
    release, which waits for approval where the environment requires it.
    """
    latest = endpoint.releases.exclude(state=State.REJECTED).order_by("-created_at", "-id").first()
    if latest is not None and latest.state == State.PROMOTED and latest.stable_version_id == version.pk:
        return releases.rollback(latest.pk, actor=actor, reason=reason)

    release = releases.create_release(endpoint, version, strategy=Release.Strategy.BLUE_GREEN, actor=actor)
    suffix = f": {reason}" if reason else ""
    record_event(release, "restore", f"{actor} asked to return {endpoint.name} to v{version.version}{suffix}", actor=actor)
    logger.info("Endpoint %s: release %s restores %s (id %s)", endpoint.name, release.pk, version, version.pk)
    return release
