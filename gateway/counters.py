"""Per-version request counters: the process's own copy for reports, and Prometheus metrics.

Each process keeps cumulative counters since it started and sends them to the portal
(see "Counters" in docs/architecture.md). The same events also go to prometheus_client
metrics for `/metrics`. With several workers prometheus_client runs in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR), so a scrape of any worker returns the sum over all workers.
"""

from __future__ import annotations

import bisect
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway.routes import Backend

# Upper bounds in seconds. A prediction of a small tabular model takes well under
# 10 ms (an estimate), so the buckets are denser at the low end than
# prometheus_client's defaults.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)

_LABELS = ("endpoint", "server_id", "version")

REQUESTS = Counter("gateway_requests", "Requests forwarded to a backend.", _LABELS)
SERVER_ERRORS = Counter(
    "gateway_server_errors", "Forwarded requests that got a 5xx status or no response.", _LABELS
)
CLIENT_ERRORS = Counter("gateway_client_errors", "Forwarded requests that got a 4xx status.", _LABELS)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from receiving a request to having the backend's full response, retries included.",
    _LABELS,
    buckets=LATENCY_BUCKETS,
)
RETRIES = Counter(
    "gateway_retries",
    "Requests retried because the backend's connection failed before a response arrived; "
    "labelled with the backend that failed.",
    _LABELS,
)
UNROUTED = Counter(
    "gateway_unrouted_requests",
    "Requests for an endpoint that is not in the route table (not_found) or has no backend (no_backend).",
    ("reason",),
)
REVISION = Gauge(
    "gateway_route_table_revision",
    "Revision of the route table in use by each process, -1 before the first table.",
    multiprocess_mode="liveall",
)


class _Series:
    """Cumulative counters for one endpoint and backend in this process."""

    __slots__ = ("endpoint", "server_id", "version", "requests", "server_errors",
                 "client_errors", "latency_sum", "bucket_counts", "metrics")

    def __init__(self, endpoint: str, backend: Backend) -> None:
        self.endpoint = endpoint
        self.server_id = backend.server_id
        self.version = backend.version
        self.requests = 0
        self.server_errors = 0
        self.client_errors = 0
        self.latency_sum = 0.0
        # One count per bucket plus the overflow; cumulated only when a report is built.
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)

        labels = (endpoint, str(backend.server_id), str(backend.version))
        self.metrics = (
            REQUESTS.labels(*labels),
            SERVER_ERRORS.labels(*labels),
            CLIENT_ERRORS.labels(*labels),
            LATENCY.labels(*labels),
        )


class RequestCounters:
    """Count forwarded requests per endpoint and backend since this process started."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, int, int], _Series] = {}

    def _get_series(self, endpoint: str, backend: Backend) -> _Series:
        key = (endpoint, backend.server_id, backend.version)
        series = self._series.get(key)
        if series is None:
            series = _Series(endpoint, backend)
            self._series[key] = series
        return series

    def record(self, endpoint: str, backend: Backend, status: int, seconds: float) -> None:
        """Count one request; status 0 means no response from the backend (a server error)."""
        series = self._get_series(endpoint, backend)
        requests, server_errors, client_errors, latency = series.metrics

        series.requests += 1
        requests.inc()

        if status >= 500 or status == 0:
            series.server_errors += 1
            server_errors.inc()
        elif status >= 400:
            series.client_errors += 1
            client_errors.inc()

        series.latency_sum += seconds
        series.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.observe(seconds)

    def record_retry(self, endpoint: str, failed: Backend) -> None:
        RETRIES.labels(endpoint, str(failed.server_id), str(failed.version)).inc()

    def snapshot(self) -> list[dict[str, Any]]:
        """Build the `counters` list of a report, with cumulative latency buckets.

        Bucket bounds are the finite upper bounds. The +Inf bucket equals `requests`,
        so it is left out: JSON has no infinity.
        """
        counters = []
        for series in self._series.values():
            cumulative = 0
            buckets = []
            for upper_bound, count in zip(LATENCY_BUCKETS, series.bucket_counts):
                cumulative += count
                buckets.append([upper_bound, cumulative])

            counters.append({
                "endpoint": series.endpoint,
                "server_id": series.server_id,
                "version": series.version,
                "requests": series.requests,
                "server_errors": series.server_errors,
                "client_errors": series.client_errors,
                "latency_sum": series.latency_sum,
                "latency_buckets": buckets,
            })
        return counters


def record_unrouted(reason: str) -> None:
    UNROUTED.labels(reason).inc()


def set_revision(revision: int) -> None:
    REVISION.set(revision)


def render_metrics() -> tuple[bytes, str]:
    """Render all metrics in the Prometheus text format, summed over workers in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead() -> None:
    """Remove this process's live gauge files so a stopped worker's revision leaves `/metrics`."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(os.getpid())
