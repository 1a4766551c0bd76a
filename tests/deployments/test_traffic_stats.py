"""Window stats and time series from stored gateway reports: differences, several processes, restarts, quantiles."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import TrafficSample
from deployments.services import traffic
from deployments.services.traffic import Totals

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
STARTED = NOW - timedelta(hours=1)
BOUNDS = (0.001, 0.005, 0.01, 0.05)


def _report(seconds_ago, requests, *, server_id=7, version=2, errors=0, instance="gw:1", started=STARTED, fast=None):
    """Store a cumulative report; `fast` of the requests took under 5 ms, the others 5-10 ms."""
    fast = requests if fast is None else fast
    buckets = [[0.001, 0], [0.005, fast], [0.01, requests], [0.05, requests]]
    TrafficSample.objects.create(
        instance=instance, gateway_started_at=started, endpoint="churn", server_id=server_id, version=version,
        requests=requests, server_errors=errors, client_errors=0, latency_sum=0.004 * requests,
        latency_buckets=buckets, created_at=NOW - timedelta(seconds=seconds_ago),
    )


def _stats(start_ago, end_ago, server_id=7):
    return traffic.server_stats(server_id, NOW - timedelta(seconds=start_ago), NOW - timedelta(seconds=end_ago))


def test_server_stats_difference_of_reports():
    _report(31, 100)
    _report(20, 150)
    _report(1, 400)
    assert _stats(30, 0).requests == 300


def test_server_stats_errors_in_window():
    _report(31, 100, errors=5)
    _report(1, 200, errors=15)
    assert _stats(30, 0).error_rate == 0.1


def test_server_stats_sums_gateway_processes():
    _report(31, 100, instance="gw:1")
    _report(1, 200, instance="gw:1")
    _report(31, 10, instance="gw:2")
    _report(1, 60, instance="gw:2")
    assert _stats(30, 0).requests == 150


def test_server_stats_new_process_counts_from_zero():
    _report(5, 40, instance="gw:3", started=NOW - timedelta(seconds=6))
    assert _stats(30, 0).requests == 40


def test_server_stats_restarted_process_counts_from_zero():
    _report(31, 500, instance="gw:1", started=STARTED)
    _report(1, 30, instance="gw:1", started=NOW - timedelta(seconds=10))
    assert _stats(30, 0).requests == 30


def test_server_stats_silent_process_starts_at_first_report():
    _report(20, 1000, started=STARTED)
    _report(1, 1100, started=STARTED)
    assert _stats(25, 0).requests == 100


def test_server_stats_ignores_other_servers():
    _report(31, 100, server_id=8)
    _report(1, 900, server_id=8)
    assert _stats(30, 0).requests == 0


def test_server_stats_empty_error_rate_is_none():
    assert _stats(30, 0).error_rate is None


def test_server_stats_request_rate_per_second():
    _report(31, 0)
    _report(1, 300)
    assert _stats(30, 0).request_rate == 10.0


def test_quantile_interpolates_in_bucket():
    totals = Totals(requests=100, buckets=((0.001, 0), (0.005, 50), (0.01, 100)))
    assert totals.quantile(0.75) == pytest.approx(0.0075)


def test_quantile_above_last_bound_returns_bound():
    totals = Totals(requests=100, buckets=((0.001, 10), (0.005, 20)))
    assert totals.quantile(0.99) == 0.005


def test_window_latency_p50_ms():
    _report(31, 0, fast=0)
    _report(1, 100, fast=50)
    assert _stats(30, 0).latency_ms(0.5) == pytest.approx(5.0)


def test_endpoint_stats_by_version():
    _report(31, 0, server_id=7, version=1)
    _report(1, 90, server_id=7, version=1)
    _report(31, 0, server_id=9, version=2)
    _report(1, 10, server_id=9, version=2)
    stats = traffic.endpoint_stats("churn", NOW - timedelta(seconds=30), NOW)
    assert {version: window.requests for version, window in stats.items()} == {1: 90, 2: 10}


def test_endpoint_series_one_point_per_step():
    _report(31, 0)
    _report(21, 50)
    _report(11, 150)
    _report(1, 150)
    series = traffic.endpoint_series("churn", NOW - timedelta(seconds=30), NOW, step_seconds=10)
    assert [point.stats.requests for point in series[2]] == [50, 100, 0]


def test_endpoint_series_point_dict_has_rates():
    _report(31, 0)
    _report(1, 100)
    point = traffic.endpoint_series("churn", NOW - timedelta(seconds=30), NOW, step_seconds=30)[2][0]
    assert set(point.as_dict()) >= {"time", "request_rate", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}
