"""Storing the gateways' counters and reading request rates, errors and latency from them."""

from __future__ import annotations

import logging
from datetime import datetime, timezone as dt_timezone

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
