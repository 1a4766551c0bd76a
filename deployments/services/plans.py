"""Checking release plans and analysis settings when a release is created.

`normalize` turns the plan and analysis that a client sent into the form the
controller runs, with every default filled in. A canary plan becomes an
explicit list of steps, and a linear plan is expanded into one. A blue/green
plan becomes the steps that run before its switch. Anything invalid raises
InvalidInput whose `field` is the path of the bad value, such as
``plan.steps[2].weight``, and whose message names the step and the rule.

Step forms, in release.plan["steps"]:

- ``{"weight": 10.5}``: send this percentage of traffic to the candidate.
- ``{"pause": {"duration": 30}}``: wait 30 s. ``{"pause": {}}``: wait until a
  person promotes the release.
- ``{"analysis": {...}}``: check the candidate's counters over a window; the
  settings are those of the release's analysis with the step's overrides.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from django.conf import settings

from mlops_portal.errors import InvalidInput

BLUE_GREEN = "blue_green"
CANARY = "canary"

MAX_STEPS = 200
MAX_SECONDS = 7 * 24 * 3600
MAX_WINDOW_SECONDS = 24 * 3600
DEFAULT_WINDOW_SECONDS = 60.0
# An estimate: below about 50 requests one error moves the error rate by 2 %
# or more, which is too coarse to judge most thresholds.
DEFAULT_MIN_REQUESTS = 50
DEFAULT_FAILURE_LIMIT = 1

ON_DEADLINE = ("rollback", "pause")

# Metric names and what each measures. Latencies are in milliseconds.
METRICS = {
    "error_rate": "fraction of requests answered with a 5xx status or not at all, from 0 to 1",
    "latency_p50_ms": "median latency in milliseconds",
    "latency_p95_ms": "95th percentile latency in milliseconds",
    "latency_p99_ms": "99th percentile latency in milliseconds",
    "request_count": "number of requests the candidate served in the window",
}

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_COMMON_KEYS = ("preview", "scale_down_delay", "progress_deadline", "on_deadline", "resources")
_PLAN_KEYS = {
    BLUE_GREEN: (*_COMMON_KEYS, "auto_promote"),
    CANARY: (*_COMMON_KEYS, "steps", "linear"),
}
_ANALYSIS_KEYS = ("window", "min_requests", "failure_limit", "metrics")
_STEP_ANALYSIS_KEYS = ("window", "min_requests", "metrics")


def normalize(strategy: str, plan: dict | None, analysis: dict | None) -> tuple[dict, dict]:
    """Check a release's plan and analysis and return them with defaults and expanded steps."""
    plan = _object(plan or {}, "plan")
    analysis_spec = normalize_analysis(analysis or {}, "analysis") if analysis else {}

    allowed = _PLAN_KEYS.get(strategy)
    if allowed is None:
        raise InvalidInput(f"Unknown strategy {strategy!r}. Use blue_green or canary.", field="strategy")
    _reject_unknown_keys(plan, allowed, "plan", f"a {strategy} plan")

    normalized = {
        "preview": _preview(plan.get("preview"), "plan.preview"),
        "scale_down_delay": _seconds(
            plan, "scale_down_delay", "plan.scale_down_delay", settings.PORTAL_SCALE_DOWN_DELAY, minimum=0
        ),
        "progress_deadline": _seconds(
            plan, "progress_deadline", "plan.progress_deadline", settings.PORTAL_PROGRESS_DEADLINE, minimum=1
        ),
        "on_deadline": _choice(plan, "on_deadline", "plan.on_deadline", ON_DEADLINE, "rollback"),
    }

    if plan.get("resources") is not None:
        normalized["resources"] = _resources(plan["resources"], "plan.resources")

    if strategy == BLUE_GREEN:
        normalized.update(_blue_green_steps(plan, analysis_spec, normalized["preview"]))
    else:
        normalized.update(_canary_steps(plan, analysis_spec))
    return normalized, analysis_spec


def default_plan(strategy: str = BLUE_GREEN) -> dict:
    """Return the plan a release gets when the client sends none (blue/green only)."""
    plan, _ = normalize(strategy, {}, {})
    return plan


def step_kind(step: dict) -> str:
    """Return "weight", "pause" or "analysis" for a normalized step."""
    return next(iter(step))


def describe_step(step: dict) -> str:
    """Describe a normalized step in a few words, for events and the UI."""
    kind = step_kind(step)
    if kind == "weight":
        return f"weight {step['weight']}%"
    if kind == "pause":
        duration = step["pause"].get("duration")
        return f"pause {duration:g} s" if duration is not None else "pause until promoted"
    return f"analysis over {step['analysis']['window']:g} s"


def planned_seconds(step: dict) -> float:
    """Return how long a step is meant to take: its pause or analysis window, else 0."""
    kind = step_kind(step)
    if kind == "pause":
        return step["pause"].get("duration") or 0.0
    if kind == "analysis":
        return step["analysis"]["window"]
    return 0.0


# Strategies


def _blue_green_steps(plan: dict, analysis_spec: dict, preview: dict | None) -> dict:
    """Build the steps that run between the candidate being ready and the switch."""
    auto_promote = plan.get("auto_promote", True)
    if not isinstance(auto_promote, bool):
        raise InvalidInput(
            f"plan.auto_promote must be true or false, got {auto_promote!r}.", field="plan.auto_promote"
        )

    steps = []
    if analysis_spec:
        if preview is None:
            raise InvalidInput(
                "A blue/green analysis measures the traffic that reaches the candidate before the switch, "
                "which is only preview traffic; set plan.preview (for example "
                '{"header": "x-preview", "value": "1"}) or leave out analysis.',
                field="plan.preview",
            )
        steps.append({"analysis": _step_analysis({}, analysis_spec, "analysis")})
    if not auto_promote:
        steps.append({"pause": {}})
    return {"auto_promote": auto_promote, "steps": steps}


def _canary_steps(plan: dict, analysis_spec: dict) -> dict:
    has_steps, has_linear = "steps" in plan, "linear" in plan
    if has_steps == has_linear:
        raise InvalidInput(
            "A canary plan needs exactly one of plan.steps (for example "
            '[{"weight": 10}, {"pause": {"duration": 60}}, {"weight": 50}]) and plan.linear '
            '(for example {"step_weight": 10, "interval": 60}).',
            field="plan.steps",
        )

    if has_linear:
        linear = _linear(plan["linear"])
        steps = _expand_linear(linear, analysis_spec)
        result = {"linear": linear, "steps": steps}
    else:
        steps = _explicit_steps(plan["steps"], analysis_spec)
        result = {"steps": steps}

    if analysis_spec and not any(step_kind(step) == "analysis" for step in steps):
        raise InvalidInput(
            "analysis is set, but no step of plan.steps runs it. Add an analysis step such as "
            '{"analysis": {}} where the check should happen, or leave out analysis.',
            field="analysis",
        )
    return result


def _explicit_steps(raw_steps, analysis_spec: dict) -> list[dict]:
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidInput("plan.steps must be a non-empty list of steps.", field="plan.steps")
    if len(raw_steps) > MAX_STEPS:
        raise InvalidInput(
            f"plan.steps has {len(raw_steps)} steps, more than the maximum of {MAX_STEPS}.", field="plan.steps"
        )
    return [_step(raw, index, analysis_spec) for index, raw in enumerate(raw_steps)]


def _step(raw, index: int, analysis_spec: dict) -> dict:
    field = f"plan.steps[{index}]"
    # Messages start with the step number, and the path follows once, such as
    # "Step 2: plan.steps[1].pause.duration must be ...".
    label = f"Step {index + 1}"
    kinds = ("weight", "pause", "analysis")
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in kinds:
        raise InvalidInput(
            f"{label}: {field} must be an object with exactly one of weight, pause and analysis, "
            f'such as {{"weight": 10}}, {{"pause": {{"duration": 60}}}} or {{"analysis": {{}}}}, got {raw!r}.',
            field=field,
        )

    kind, value = next(iter(raw.items()))
    if kind == "weight":
        return {"weight": float(_weight(value, f"{field}.weight", label))}

    if kind == "pause":
        pause = _object(value, f"{field}.pause", label)
        _reject_unknown_keys(pause, ("duration",), f"{field}.pause", "a pause step")
        if "duration" not in pause:
            return {"pause": {}}
        return {"pause": {"duration": _seconds(pause, "duration", f"{field}.pause.duration", None, minimum=0, label=label)}}

    overrides = _object(value, f"{field}.analysis", label)
    _reject_unknown_keys(overrides, _STEP_ANALYSIS_KEYS, f"{field}.analysis", "an analysis step")
    if not analysis_spec and "metrics" not in overrides:
        raise InvalidInput(
            f"{label}: {field} is an analysis step, but neither the step nor the release's analysis has metrics. "
            'Give analysis.metrics, for example [{"metric": "error_rate", "max": 0.01}].',
            field=f"{field}.analysis",
        )
    return {"analysis": _step_analysis(overrides, analysis_spec, f"{field}.analysis")}


def _linear(raw) -> dict:
    linear = _object(raw, "plan.linear")
    _reject_unknown_keys(linear, ("step_weight", "interval"), "plan.linear", "a linear plan")
    for key in ("step_weight", "interval"):
        if key not in linear:
            raise InvalidInput(
                f"plan.linear.{key} is missing. A linear plan needs step_weight (percent added per step) "
                "and interval (seconds per step).",
                field=f"plan.linear.{key}",
            )

    step_weight = _weight(linear["step_weight"], "plan.linear.step_weight")
    if step_weight <= 0 or step_weight >= 100:
        raise InvalidInput(
            f"plan.linear.step_weight must be above 0 and below 100, got {step_weight}.",
            field="plan.linear.step_weight",
        )
    weights = math.ceil(Decimal(100) / step_weight) - 1
    if 2 * weights > MAX_STEPS:
        raise InvalidInput(
            f"plan.linear.step_weight {step_weight} makes {weights} traffic steps, more than the maximum of "
            f"{MAX_STEPS // 2}, so use a step weight of at least {Decimal(100) / (MAX_STEPS // 2 + 1):.1f}.",
            field="plan.linear.step_weight",
        )

    interval = _seconds(linear, "interval", "plan.linear.interval", None, minimum=1)
    return {"step_weight": float(step_weight), "interval": interval}


def _expand_linear(linear: dict, analysis_spec: dict) -> list[dict]:
    """Expand to weight, wait, weight, wait, up to the last weight below 100 %; the promotion sends 100 %.

    With analysis metrics each wait is an analysis over the interval, else a pause.
    """
    step_weight = Decimal(str(linear["step_weight"]))
    steps = []
    weight = step_weight
    while weight < 100:
        steps.append({"weight": float(weight)})
        if analysis_spec:
            steps.append({"analysis": _step_analysis({"window": linear["interval"]}, analysis_spec, "analysis")})
        else:
            steps.append({"pause": {"duration": linear["interval"]}})
        weight += step_weight
    return steps


# Analysis


def normalize_analysis(raw, field: str) -> dict:
    """Check analysis settings (window, min_requests, failure_limit, metrics) and fill in defaults."""
    spec = _object(raw, field)
    _reject_unknown_keys(spec, _ANALYSIS_KEYS, field, "analysis")
    if "metrics" not in spec:
        raise InvalidInput(
            f'{field}.metrics is missing. Give at least one check such as {{"metric": "error_rate", "max": 0.01}}.',
            field=f"{field}.metrics",
        )

    return {
        "window": _seconds(spec, "window", f"{field}.window", DEFAULT_WINDOW_SECONDS, minimum=1, maximum=MAX_WINDOW_SECONDS),
        "min_requests": _integer(spec, "min_requests", f"{field}.min_requests", DEFAULT_MIN_REQUESTS, minimum=0),
        "failure_limit": _integer(spec, "failure_limit", f"{field}.failure_limit", DEFAULT_FAILURE_LIMIT, minimum=1),
        "metrics": _metrics(spec["metrics"], f"{field}.metrics"),
    }


def _step_analysis(overrides: dict, analysis_spec: dict, field: str) -> dict:
    """Merge a step's overrides into the release's analysis, checking the overridden values."""
    merged = {
        "window": DEFAULT_WINDOW_SECONDS,
        "min_requests": DEFAULT_MIN_REQUESTS,
        "failure_limit": DEFAULT_FAILURE_LIMIT,
        **analysis_spec,
    }
    if "window" in overrides:
        merged["window"] = _seconds(overrides, "window", f"{field}.window", None, minimum=1, maximum=MAX_WINDOW_SECONDS)
    if "min_requests" in overrides:
        merged["min_requests"] = _integer(overrides, "min_requests", f"{field}.min_requests", None, minimum=0)
    if "metrics" in overrides:
        merged["metrics"] = _metrics(overrides["metrics"], f"{field}.metrics")
    return merged


def _metrics(raw, field: str) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(
            f'{field} must be a non-empty list of checks such as {{"metric": "error_rate", "max": 0.01}}.',
            field=field,
        )
    return [_metric(entry, f"{field}[{index}]") for index, entry in enumerate(raw)]


def _metric(raw, field: str) -> dict:
    check = _object(raw, field)
    _reject_unknown_keys(check, ("metric", "min", "max", "relative_to"), field, "a metric check")

    name = check.get("metric")
    if name not in METRICS:
        known = ", ".join(METRICS)
        raise InvalidInput(f"{field}.metric {name!r} is not a known metric. Use one of {known}.", field=f"{field}.metric")

    relative = check.get("relative_to")
    if relative is not None and relative != "stable":
        raise InvalidInput(
            f'{field}.relative_to must be "stable" or left out, got {relative!r}.', field=f"{field}.relative_to"
        )
    if relative and name == "request_count":
        raise InvalidInput(
            f"{field}: request_count is compared with an absolute number, so leave out relative_to.",
            field=f"{field}.relative_to",
        )

    bounds = {}
    for key in ("min", "max"):
        if key in check:
            bounds[key] = _number(check[key], f"{field}.{key}", minimum=0)
    if not bounds:
        raise InvalidInput(
            f"{field} has no threshold. Give max (for example 0.01 for error_rate) or min.", field=field
        )
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise InvalidInput(f"{field}: min {bounds['min']:g} is above max {bounds['max']:g}.", field=f"{field}.min")
    if name == "error_rate" and not relative and bounds.get("max", 0) > 1:
        raise InvalidInput(
            f"{field}.max {bounds['max']:g} is above 1. error_rate is a fraction, so 1 % is 0.01.",
            field=f"{field}.max",
        )

    result = {"metric": name, **bounds}
    if relative:
        result["relative_to"] = relative
    return result


# Values


def _resources(raw, field: str) -> dict:
    """Memory and CPU limits for the candidate's server; runtimes that cannot limit them ignore them."""
    resources = _object(raw, field)
    _reject_unknown_keys(resources, ("memory_mb", "cpus"), field, "resource limits")

    checked = {}
    memory = resources.get("memory_mb")
    if memory is not None:
        if isinstance(memory, bool) or not isinstance(memory, int) or not 64 <= memory <= 1024 * 1024:
            raise InvalidInput(
                f"{field}.memory_mb must be a whole number of MiB from 64 to 1048576, such as 512; got {memory!r}.",
                field=f"{field}.memory_mb",
            )
        checked["memory_mb"] = memory
    cpus = resources.get("cpus")
    if cpus is not None:
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or not 0.1 <= cpus <= 256:
            raise InvalidInput(
                f"{field}.cpus must be a number of CPUs from 0.1 to 256, such as 0.5 or 2; got {cpus!r}.",
                field=f"{field}.cpus",
            )
        checked["cpus"] = float(cpus)
    return checked


def _preview(raw, field: str) -> dict | None:
    if raw is None:
        return None
    preview = _object(raw, field)
    _reject_unknown_keys(preview, ("header", "value"), field, "a preview route")

    header = preview.get("header")
    if not isinstance(header, str) or not _HEADER_NAME.match(header.lower()):
        raise InvalidInput(
            f"{field}.header must be an HTTP header name such as x-preview, got {header!r}.", field=f"{field}.header"
        )
    value = preview.get("value")
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidInput(
            f"{field}.value must be a string of 1 to 200 characters, got {value!r}.", field=f"{field}.value"
        )
    return {"header": header.lower(), "value": value}


def _weight(value, field: str, label: str | None = None) -> Decimal:
    expected = "a percentage from 0 to 100 with at most one decimal, such as 25 or 0.5"
    prefix = f"{label}: " if label else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{prefix}{field} must be {expected}, got {value!r}.", field=field)

    weight = Decimal(str(value))
    if weight != weight.quantize(Decimal("0.1")) or not 0 <= weight <= 100:
        raise InvalidInput(f"{prefix}{field} {value!r} is not {expected}.", field=field)
    return weight.quantize(Decimal("0.1"))


def _seconds(
    raw: dict,
    key: str,
    field: str,
    default: float | None,
    *,
    minimum: float,
    maximum: float = MAX_SECONDS,
    label: str | None = None,
) -> float:
    if key not in raw and default is not None:
        return float(default)
    prefix = f"{label}: " if label else ""
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{prefix}{field} must be a number of seconds such as 30, got {value!r}.", field=field)
    if not minimum <= value <= maximum:
        raise InvalidInput(
            f"{prefix}{field} must be from {minimum:g} to {maximum:g} seconds, got {value:g}.", field=field
        )
    return float(value)


def _integer(raw: dict, key: str, field: str, default: int | None, *, minimum: int) -> int:
    if key not in raw and default is not None:
        return default
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{field} must be a whole number of at least {minimum}, got {value!r}.", field=field)
    return value


def _number(value, field: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise InvalidInput(f"{field} must be a number of at least {minimum:g}, got {value!r}.", field=field)
    return float(value)


def _choice(raw: dict, key: str, field: str, choices: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}, got {value!r}.", field=field)
    return value


def _object(value, field: str, label: str | None = None) -> dict:
    if not isinstance(value, dict):
        prefix = f"{label}: " if label else ""
        raise InvalidInput(f"{prefix}{field} must be a JSON object, got {value!r}.", field=field)
    return value


def _reject_unknown_keys(raw: dict, allowed: tuple[str, ...], field: str, what: str) -> None:
    for key in raw:
        if key not in allowed:
            raise InvalidInput(
                f"{field}.{key} is not a setting of {what}. The settings are {', '.join(allowed)}.",
                field=f"{field}.{key}",
            )
