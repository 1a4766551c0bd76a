"""Estimates for the release wizard, taken from how long earlier releases took."""

from __future__ import annotations

import statistics

from deployments.models import Environment, ReleaseEvent

# Used until an environment has MIN_SAMPLES releases that reached traffic.
# Estimates: a local model server starts in a few seconds on a small
# scikit-learn model, and a container needs an image build first (about 25 to
# 65 s cold on 2 cores, see docs/benchmarks.md).
DEFAULT_STARTUP_SECONDS = {Environment.Runtime.LOCAL: 30, Environment.Runtime.DOCKER: 90}
MIN_SAMPLES = 3
MAX_SAMPLES = 20


def startup_seconds(environment: Environment | None) -> int:
    """Return the median time from a release's start until its candidate was ready, over recent releases.

    The start-up ends when a release moves from `deploying` to `progressing`,
    after its candidate passed the readiness check and smoke prediction.
    Releases that never got there are not counted.
    """
    if environment is None:
        return DEFAULT_STARTUP_SECONDS[Environment.Runtime.LOCAL]

    ready_events = (
        ReleaseEvent.objects.filter(
            release__endpoint__environment=environment,
            from_state="deploying",
            to_state="progressing",
            release__started_at__isnull=False,
        )
        .order_by("-created_at")
        .values_list("created_at", "release__started_at")[:MAX_SAMPLES]
    )
    samples = [(ready_at - started_at).total_seconds() for ready_at, started_at in ready_events]
    if len(samples) < MIN_SAMPLES:
        return DEFAULT_STARTUP_SECONDS.get(environment.runtime, DEFAULT_STARTUP_SECONDS[Environment.Runtime.LOCAL])
    return max(1, round(statistics.median(samples)))
