"""Image builds: preparing a model server in a Celery task of its own, with a live log.

A container image build takes seconds to minutes. Running it inside a
controller step would hold the release's row lock all that time, so abort and
pause would wait, and its log would only become visible at the commit. Instead
the controller requests a build and polls its state, and `run_build` writes
the engine's output to the ImageBuild row as it arrives, in autocommit.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from deployments.models import ImageBuild, ModelServer, Release
from deployments.runtimes import RuntimeFailure, get_runtime
from deployments.runtimes.docker_image import STEP_PATTERN

logger = logging.getLogger("deployments.builds")

# The log kept per build; a longer log keeps its end, where failures show.
LOG_LIMIT_CHARS = 200_000
LOG_FLUSH_SECONDS = 0.5
# Attribute that `prefetch_candidate_build` fills on each release's candidate server.
_PREFETCHED_BUILDS = "latest_builds"


def latest_build(server: ModelServer) -> ImageBuild | None:
    return server.builds.order_by("-created_at", "-pk").first()


def prefetch_candidate_build() -> Prefetch:
    """Prefetch the latest build of each release's candidate server, without its log, in one query per page."""
    latest = ImageBuild.objects.defer("log", "prepared").order_by("-created_at", "-pk")[:1]
    return Prefetch("candidate_server__builds", queryset=latest, to_attr=_PREFETCHED_BUILDS)


def candidate_build(release: Release) -> ImageBuild | None:
    """Return the latest build of the release's candidate server, without its log.

    Uses the rows of `prefetch_candidate_build()` when the release came from
    a queryset with it, and queries otherwise.
    """
    if release.candidate_server_id is None:
        return None
    if Release._meta.get_field("candidate_server").is_cached(release):
        prefetched = getattr(release.candidate_server, _PREFETCHED_BUILDS, None)
        if prefetched is not None:
            return prefetched[0] if prefetched else None
    latest = ImageBuild.objects.defer("log", "prepared").filter(server_id=release.candidate_server_id)
    return latest.order_by("-created_at", "-pk").first()


def request_build(server: ModelServer) -> ImageBuild:
    """Store a queued build for the server and queue its task once the caller's transaction commits."""
    from deployments.tasks import build_server_image

    build = ImageBuild.objects.create(server=server, version=server.version, runtime=server.runtime)
    transaction.on_commit(lambda: build_server_image.delay(build.pk))
    logger.info("Build %s queued for server %s (endpoint %s, v%s)", build.pk, server.pk, server.endpoint.name, server.version.version)
    return build


def build_wait_limit() -> float:
    """Seconds the controller waits for a build before it gives up on it."""
    return max(settings.PORTAL_PROGRESS_DEADLINE, settings.PORTAL_DOCKER_BUILD_TIMEOUT + 60)


def is_stale(build: ImageBuild) -> bool:
    """Return whether an unfinished build stopped reporting, because its worker died or its task was lost."""
    last_sign = build.heartbeat_at or build.created_at
    return not build.is_final and (timezone.now() - last_sign).total_seconds() > build_wait_limit()


def run_build(build_id: int) -> ImageBuild | None:
    """Prepare the build's server through its runtime, storing progress, log and outcome.

    A second delivery of the same task runs the build again; the runtime's
    prepare is idempotent and reuses an image that was finished meanwhile.
    """
    from deployments.services.servers import build_spec

    build = ImageBuild.objects.select_related("server__endpoint__environment", "server__version__model", "version").filter(pk=build_id).first()
    if build is None or build.is_final:
        logger.info("Build %s: nothing to do (%s)", build_id, "gone" if build is None else build.state)
        return build

    now = timezone.now()
    ImageBuild.objects.filter(pk=build.pk).update(state=ImageBuild.State.RUNNING, started_at=now, heartbeat_at=now)
    logger.info("Build %s started for server %s (v%s) on the %s runtime", build.pk, build.server_id, build.version.version, build.runtime)

    writer = BuildLogWriter(build.pk)
    try:
        runtime = get_runtime(build.runtime)
        prepared = runtime.prepare(build_spec(build.server), writer.line)
    except RuntimeFailure as exc:
        writer.flush()
        return _finish(build, ImageBuild.State.FAILED, failure_reason=str(exc))
    except Exception as exc:
        writer.flush()
        logger.exception("Build %s: unexpected error", build.pk)
        return _finish(build, ImageBuild.State.FAILED, failure_reason=f"The build stopped with an unexpected error: {exc}")

    writer.flush()
    return _finish(
        build,
        ImageBuild.State.SUCCEEDED,
        prepared=prepared,
        image=prepared.get("image", ""),
        image_id=prepared.get("image_id", ""),
        digest=prepared.get("digest", ""),
        reused=not prepared.get("built", True),
    )


def _finish(build: ImageBuild, state: str, **fields) -> ImageBuild:
    now = timezone.now()
    ImageBuild.objects.filter(pk=build.pk).update(state=state, finished_at=now, heartbeat_at=now, **fields)
    build.refresh_from_db()
    if state == ImageBuild.State.FAILED:
        logger.warning("Build %s for server %s failed: %s", build.pk, build.server_id, build.failure_reason.splitlines()[0])
    else:
        logger.info(
            "Build %s for server %s %s image %s in %.1f s",
            build.pk, build.server_id, "reused" if build.reused else "built", build.image, build.duration_seconds or 0,
        )
    return build


class BuildLogWriter:
    """Collect build output lines and write them to the build row at most every LOG_FLUSH_SECONDS."""

    def __init__(self, build_id: int):
        self.build_id = build_id
        self.text = ""
        self.dropped = 0
        self.step = ""
        self.step_description = ""
        self._dirty = False
        self._flushed_at = time.monotonic()

    def line(self, text: str) -> None:
        match = STEP_PATTERN.match(text)
        if match:
            self.step = match.group(1)
            self.step_description = " ".join(match.group(2).split())[:200]

        self.text += text + "\n"
        excess = len(self.text) - LOG_LIMIT_CHARS
        if excess > 0:
            self.text = self.text[excess:]
            self.dropped += excess
        self._dirty = True
        if time.monotonic() - self._flushed_at >= LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        ImageBuild.objects.filter(pk=self.build_id).update(
            log=self.text, log_dropped=self.dropped, step=self.step, step_description=self.step_description, heartbeat_at=timezone.now()
        )
        self._dirty = False
        self._flushed_at = time.monotonic()
