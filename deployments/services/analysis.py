"""Judging a candidate from the gateways' counters over an analysis window.

An analysis passes when every metric check passes and fails when any check
fails. It is inconclusive when the candidate served fewer than `min_requests`
requests, or the stable version did for a check relative to it. Too few
requests cannot be judged, so the controller pauses for a person.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from deployments.models import Release
from deployments.services import traffic
from deployments.services.traffic import WindowStats

logger = logging.getLogger("deployments.analysis")

PASSED = "passed"
FAILED = "failed"
INCONCLUSIVE = "inconclusive"

_QUANTILES = {"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One metric check: the candidate's value, the limits it was held to, and the outcome."""

    metric: str
    value: float | None
    minimum: float | None
    maximum: float | None
    outcome: str
    detail: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AnalysisResult:
    outcome: str
    summary: str
    checks: list[CheckResult]
    candidate: WindowStats
    stable: WindowStats | None

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "checks": [check.as_dict() for check in self.checks],
            "candidate": self.candidate.as_dict(),
            "stable": self.stable.as_dict() if self.stable else None,
            "window_seconds": self.candidate.seconds,
        }


def run(release: Release, spec: dict, start: datetime, end: datetime) -> AnalysisResult:
    """Analyse the release's candidate from `start` to `end` against `spec` (a normalized analysis)."""
    candidate = traffic.server_stats(release.candidate_server_id, start, end)
    stable = traffic.server_stats(release.stable_server_id, start, end) if release.stable_server_id else None
    result = evaluate(spec, candidate, stable)
    logger.info(
        "Release %s: analysis %s over %.0f s (candidate server %s: %d requests; stable server %s: %s requests): %s",
        release.pk, result.outcome, candidate.seconds, release.candidate_server_id, candidate.requests,
        release.stable_server_id, stable.requests if stable else "no", result.summary,
    )
    return result


def evaluate(spec: dict, candidate: WindowStats, stable: WindowStats | None) -> AnalysisResult:
    """Hold the candidate's window stats to each metric check of `spec`."""
    min_requests = spec["min_requests"]
    if candidate.requests < min_requests:
        summary = (
            f"inconclusive: the candidate served {candidate.requests} requests in {candidate.seconds:.0f} s, "
            f"fewer than the minimum sample of {min_requests}"
        )
        return AnalysisResult(INCONCLUSIVE, summary, [], candidate, stable)

    checks = [_check(metric, candidate, stable, min_requests) for metric in spec["metrics"]]
    failed = [check for check in checks if check.outcome == FAILED]
    inconclusive = [check for check in checks if check.outcome == INCONCLUSIVE]
    if failed:
        outcome = FAILED
        summary = "failed: " + "; ".join(check.detail for check in failed)
    elif inconclusive:
        outcome = INCONCLUSIVE
        summary = "inconclusive: " + "; ".join(check.detail for check in inconclusive)
    else:
        outcome = PASSED
        summary = "passed: " + "; ".join(check.detail for check in checks)
    return AnalysisResult(outcome, summary, checks, candidate, stable)


def _check(metric: dict, candidate: WindowStats, stable: WindowStats | None, min_requests: int) -> CheckResult:
    name = metric["metric"]
    value = metric_value(name, candidate)
    minimum, maximum = metric.get("min"), metric.get("max")
    scale_text = ""

    if metric.get("relative_to") == "stable":
        if stable is None or stable.requests < min_requests:
            served = 0 if stable is None else stable.requests
            detail = f"{name}: the stable version served {served} requests, too few to compare with (minimum {min_requests})"
            return CheckResult(name, value, None, None, INCONCLUSIVE, detail)
        reference = metric_value(name, stable)
        minimum = None if minimum is None else minimum * reference
        maximum = None if maximum is None else maximum * reference
        scale_text = f" (stable {_format(name, reference)} × {metric.get('max', metric.get('min')):g})"

    if value is None:
        return CheckResult(name, None, minimum, maximum, INCONCLUSIVE, f"{name}: no value")

    too_low = minimum is not None and value < minimum
    too_high = maximum is not None and value > maximum
    if too_high:
        detail = f"{name} {_format(name, value)} is above the maximum {_format(name, maximum)}{scale_text}"
    elif too_low:
        detail = f"{name} {_format(name, value)} is below the minimum {_format(name, minimum)}{scale_text}"
    else:
        limits = " and ".join(
            text for text in (
                f"at least {_format(name, minimum)}" if minimum is not None else "",
                f"at most {_format(name, maximum)}" if maximum is not None else "",
            ) if text
        )
        detail = f"{name} {_format(name, value)} is {limits}{scale_text}"
    outcome = FAILED if too_low or too_high else PASSED
    return CheckResult(name, value, minimum, maximum, outcome, detail)


def metric_value(name: str, stats: WindowStats) -> float | None:
    """Return a metric of window stats, in the unit its name gives."""
    if name == "error_rate":
        return stats.error_rate
    if name == "request_count":
        return float(stats.requests)
    return stats.latency_ms(_QUANTILES[name])


def _format(name: str, value: float) -> str:
    if name == "error_rate":
        return f"{value * 100:.2f} %"
    if name == "request_count":
        return f"{value:.0f}"
    return f"{value:.2f} ms"
