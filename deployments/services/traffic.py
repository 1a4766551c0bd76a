"""Storing the gateways' counters and reading request rates, errors and latency from them.

Each gateway process reports cumulative counters per backend about every
second (see docs/architecture.md, "Counters"). The traffic of a time window is
the difference between the last report at or before its end and the last one
at or before its start, per process, summed over processes. Latency quantiles
are interpolated inside the histogram buckets as Prometheus'
histogram_quantile does, so they are only as fine as the buckets (for example
anything from 5 to 10 ms lands in one bucket).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone as dt_timezone

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deployments.models import TrafficSample
from mlops_portal.errors import InvalidInput

logger = logging.getLogger("deployments.traffic")


def store_report(report: dict) -> int:
    """Store one gateway report (see docs/architecture.md, "Counters"); return the number of samples."""
    instance = _required_str(report, "instance")
    started_at = _parse_time(report.get("started_at"), "started_at")
    counters = report.get("counters")
    if not isinstance(counters, list):
        raise InvalidInput("counters must be a list of per-backend counters.", field="counters")

    now = timezone.now()
    samples = []
    for index, counter in enumerate(counters):
        if not isinstance(counter, dict):
            raise InvalidInput(f"counters[{index}] must be an object.", field="counters")
        try:
            samples.append(
                TrafficSample(
                    instance=instance,
                    gateway_started_at=started_at,
                    endpoint=str(counter["endpoint"])[:64],
                    server_id=int(counter["server_id"]),
                    version=int(counter["version"]),
                    requests=int(counter["requests"]),
                    server_errors=int(counter["server_errors"]),
                    client_errors=int(counter["client_errors"]),
                    latency_sum=float(counter["latency_sum"]),
                    latency_buckets=[[float(bound), int(count)] for bound, count in counter["latency_buckets"]],
                    created_at=now,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"counters[{index}] is invalid: {exc!r}.", field="counters") from None

    TrafficSample.objects.bulk_create(samples)
    return len(samples)


def _required_str(report: dict, key: str) -> str:
    value = report.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{key} must be a non-empty string.", field=key)
    return value[:200]


def _parse_time(value, field: str) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidInput(f"{field} must be an ISO 8601 time such as 2026-12-04T20:00:00Z.", field=field)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    return parsed


# Reports older than this before a window's start are not read. A process that
# reported within it has its baseline there. A process that started within it
# counts from zero. For a process that reported nothing within it, the window
# starts at its first report inside the window.
BASELINE_LOOKBACK = timedelta(seconds=30)


@dataclasses.dataclass(frozen=True)
class Totals:
    """Counters of one backend, cumulative or over a window, with buckets as (upper bound in s, cumulative count)."""

    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    latency_sum: float = 0.0
    buckets: tuple[tuple[float, int], ...] = ()

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.requests + other.requests,
            self.server_errors + other.server_errors,
            self.client_errors + other.client_errors,
            self.latency_sum + other.latency_sum,
            _combine_buckets(self.buckets, other.buckets, 1),
        )

    def __sub__(self, other: Totals) -> Totals:
        # Counters only grow within one process, so a negative difference can
        # only come from reports that arrived out of order, and it becomes 0.
        return Totals(
            max(0, self.requests - other.requests),
            max(0, self.server_errors - other.server_errors),
            max(0, self.client_errors - other.client_errors),
            max(0.0, self.latency_sum - other.latency_sum),
            tuple((bound, max(0, count)) for bound, count in _combine_buckets(self.buckets, other.buckets, -1)),
        )

    def quantile(self, q: float) -> float | None:
        """Return the q-quantile of latency in seconds, or None without requests."""
        if self.requests == 0:
            return None

        rank = q * self.requests
        lower_bound, lower_count = 0.0, 0
        for bound, count in self.buckets:
            if count >= rank:
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
            lower_bound, lower_count = bound, count
        # Above the largest finite bound, the histogram gives only that bound as a lower limit.
        return lower_bound


def _combine_buckets(left, right, sign: int) -> tuple[tuple[float, int], ...]:
    counts: dict[float, int] = defaultdict(int)
    for bound, count in left:
        counts[bound] += count
    for bound, count in right:
        counts[bound] += sign * count
    return tuple(sorted(counts.items()))


@dataclasses.dataclass(frozen=True)
class WindowStats:
    """One backend's or version's traffic over a window of `seconds`."""

    totals: Totals
    seconds: float

    @property
    def requests(self) -> int:
        return self.totals.requests

    @property
    def request_rate(self) -> float:
        """Requests per second."""
        return self.totals.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float | None:
        """Fraction of requests that got a 5xx status or no response, or None without requests."""
        return self.totals.server_errors / self.totals.requests if self.totals.requests else None

    def latency_ms(self, q: float) -> float | None:
        seconds = self.totals.quantile(q)
        return None if seconds is None else seconds * 1000

    def as_dict(self) -> dict:
        return {
            "requests": self.totals.requests,
            "server_errors": self.totals.server_errors,
            "client_errors": self.totals.client_errors,
            "request_rate": round(self.request_rate, 3),
            "error_rate": self.error_rate,
            "latency_p50_ms": self.latency_ms(0.50),
            "latency_p95_ms": self.latency_ms(0.95),
            "latency_p99_ms": self.latency_ms(0.99),
        }


def server_stats(server_id: int, start: datetime, end: datetime) -> WindowStats:
    """Return one model server's traffic from `start` to `end`, summed over gateway processes."""
    samples = _load_samples(start, end, server_id=server_id)
    totals = sum((series.between(start, end) for series in samples.values()), Totals())
    return WindowStats(totals, (end - start).total_seconds())


def endpoint_stats(endpoint: str, start: datetime, end: datetime) -> dict[int, WindowStats]:
    """Return an endpoint's traffic from `start` to `end` per model version number."""
    samples = _load_samples(start, end, endpoint=endpoint)
    by_version: dict[int, Totals] = defaultdict(Totals)
    for series in samples.values():
        by_version[series.version] += series.between(start, end)
    seconds = (end - start).total_seconds()
    return {version: WindowStats(totals, seconds) for version, totals in sorted(by_version.items())}


@dataclasses.dataclass(frozen=True)
class SeriesPoint:
    """One interval of a time series: it ends at `time` and lasts `seconds`."""

    time: datetime
    stats: WindowStats

    def as_dict(self) -> dict:
        return {"time": self.time.isoformat(), **self.stats.as_dict()}


def endpoint_series(endpoint: str, start: datetime, end: datetime, step_seconds: float = 10.0) -> dict[int, list[SeriesPoint]]:
    """Return per-version time series of an endpoint's traffic, one point per `step_seconds` from `start` to `end`.

    For live charts: request rate, error rate and latency quantiles per
    interval. A version without traffic in an interval gets a point with 0
    requests and None for its rates and quantiles.
    """
    if step_seconds <= 0:
        raise InvalidInput("step_seconds must be above 0.", field="step_seconds")
    step = timedelta(seconds=step_seconds)
    count = max(1, min(2000, int((end - start) / step)))
    times = [start + step * index for index in range(count + 1)]

    samples = _load_samples(start, times[-1], endpoint=endpoint)
    versions = sorted({series.version for series in samples.values()})
    result: dict[int, list[SeriesPoint]] = {version: [] for version in versions}
    for before, after in zip(times, times[1:]):
        interval: dict[int, Totals] = defaultdict(Totals)
        for series in samples.values():
            interval[series.version] += series.between(before, after)
        for version in versions:
            result[version].append(SeriesPoint(after, WindowStats(interval[version], step_seconds)))
    return result


@dataclasses.dataclass
class _Series:
    """The reports of one gateway process for one backend, oldest first."""

    started_at: datetime
    version: int
    times: list[datetime] = dataclasses.field(default_factory=list)
    totals: list[Totals] = dataclasses.field(default_factory=list)
    loaded_from: datetime | None = None

    def at(self, moment: datetime) -> Totals:
        """Return the counters of the last report at or before `moment`."""
        index = bisect.bisect_right(self.times, moment) - 1
        if index >= 0:
            return self.totals[index]
        if self.started_at >= self.loaded_from:
            return Totals()
        return self.totals[0]

    def between(self, start: datetime, end: datetime) -> Totals:
        return self.at(end) - self.at(start)


def _load_samples(start: datetime, end: datetime, **filters) -> dict[tuple, _Series]:
    loaded_from = start - BASELINE_LOOKBACK
    rows = (
        TrafficSample.objects.filter(created_at__gte=loaded_from, created_at__lte=end, **filters)
        .order_by("created_at", "id")
        .values_list(
            "instance", "gateway_started_at", "server_id", "version", "created_at",
            "requests", "server_errors", "client_errors", "latency_sum", "latency_buckets",
        )
    )

    series: dict[tuple, _Series] = {}
    for instance, started_at, server_id, version, created_at, requests, server_errors, client_errors, latency_sum, buckets in rows:
        key = (instance, started_at, server_id)
        entry = series.get(key)
        if entry is None:
            entry = series[key] = _Series(started_at=started_at, version=version, loaded_from=loaded_from)
        entry.times.append(created_at)
        entry.totals.append(
            Totals(requests, server_errors, client_errors, latency_sum, tuple((float(b), int(c)) for b, c in buckets))
        )
    return series
