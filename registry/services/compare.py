"""Comparing two versions: how their signatures differ and how their metrics moved.

The release engine can call `compare_versions(live, candidate)` to decide whether
a candidate accepts every request the live version accepts.
"""

from __future__ import annotations

import dataclasses
import math

from model_server.signature import Signature, SignatureError
from registry.models import ModelVersion


@dataclasses.dataclass(frozen=True)
class MetricDelta:
    name: str
    base: float | None
    candidate: float | None

    @property
    def delta(self) -> float | None:
        if self.base is None or self.candidate is None:
            return None
        return self.candidate - self.base

    def to_dict(self) -> dict:
        return {"name": self.name, "base": self.base, "candidate": self.candidate, "delta": self.delta}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What changes for clients and in the metrics when `candidate` replaces `base`."""

    base: ModelVersion
    candidate: ModelVersion
    input_changes: list[str]
    output_changes: list[str]
    metrics: list[MetricDelta]

    @property
    def compatible(self) -> bool:
        """True when every request that the base version accepts is valid for the candidate too."""
        return not self.input_changes

    def to_dict(self) -> dict:
        return {
            "base": self.base.uri,
            "candidate": self.candidate.uri,
            "compatible": self.compatible,
            "input_changes": self.input_changes,
            "output_changes": self.output_changes,
            "metrics": [metric.to_dict() for metric in self.metrics],
        }


def compare_versions(base: ModelVersion, candidate: ModelVersion) -> Comparison:
    return Comparison(
        base=base,
        candidate=candidate,
        input_changes=_input_changes(base, candidate),
        output_changes=_output_changes(base.signature, candidate.signature),
        metrics=_metric_deltas(base.metrics or {}, candidate.metrics or {}),
    )


def _parse(version: ModelVersion) -> Signature | None:
    if not version.signature:
        return None
    try:
        return Signature.from_dict(version.signature)
    except SignatureError:
        return None


def _input_changes(base: ModelVersion, candidate: ModelVersion) -> list[str]:
    old, new = _parse(base), _parse(candidate)
    if old is None and new is None:
        return []
    if old is None:
        return ["the candidate declares an input signature, so requests are now checked against it"]
    if new is None:
        return ["the candidate has no input signature, so requests are no longer checked"]
    return old.input_differences(new)


def _output_changes(base: dict | None, candidate: dict | None) -> list[str]:
    """Describe output changes by name and type; the model server does not check outputs.

    Outputs without a name, such as most tensors, are matched and described by position.
    """
    old = _outputs_by_key(base)
    new = _outputs_by_key(candidate)
    changes = [f"{_describe_output(key, old[key])} was removed" for key in old if key not in new]
    changes += [f"{_describe_output(key, new[key])} was added" for key in new if key not in old]
    for key in old:
        if key in new and _output_type(old[key]) != _output_type(new[key]):
            changes.append(
                f"{_label_output(key)} changed type from {_output_type(old[key])} to {_output_type(new[key])}"
            )
    return changes


def _outputs_by_key(signature: dict | None) -> dict[str | int, dict]:
    """Map each output spec to its name, or to its position when it has no name."""
    specs = (signature or {}).get("outputs") or []
    outputs: dict[str | int, dict] = {}
    for position, spec in enumerate(specs):
        name = spec.get("name")
        outputs[position if name is None else str(name)] = spec
    return outputs


def _output_type(spec: dict) -> str:
    tensor = spec.get("tensor-spec")
    if spec.get("type") == "tensor" and isinstance(tensor, dict):
        return f"tensor of {tensor.get('dtype')}"
    return str(spec.get("type"))


def _label_output(key: str | int) -> str:
    if isinstance(key, int):
        return f"output {key} (unnamed)"
    return f"output '{key}'"


def _describe_output(key: str | int, spec: dict) -> str:
    if isinstance(key, int):
        return f"output {key} (unnamed, {_output_type(spec)})"
    return f"output '{key}' ({_output_type(spec)})"


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _metric_deltas(base: dict, candidate: dict) -> list[MetricDelta]:
    names = sorted(set(base) | set(candidate))
    return [MetricDelta(name, _number(base.get(name)), _number(candidate.get(name))) for name in names]
