"""Output signature changes between two versions, for named and unnamed outputs."""

from __future__ import annotations

from registry.models import ModelVersion
from registry.services.compare import compare_versions

UNNAMED_LONG = {"type": "long"}
UNNAMED_TENSOR = {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}
NAMED_SCORE = {"type": "double", "name": "score"}


def _output_changes(base_outputs: list[dict], candidate_outputs: list[dict]) -> list[str]:
    base = ModelVersion(version=1, signature={"inputs": None, "outputs": base_outputs}, metrics={})
    candidate = ModelVersion(version=2, signature={"inputs": None, "outputs": candidate_outputs}, metrics={})
    return compare_versions(base, candidate).output_changes


def test_unnamed_output_removed_by_position():
    assert _output_changes([UNNAMED_LONG], []) == ["output 0 (unnamed, long) was removed"]


def test_unnamed_output_added_by_position():
    assert _output_changes([], [UNNAMED_LONG]) == ["output 0 (unnamed, long) was added"]


def test_unnamed_tensor_removed_names_dtype():
    assert _output_changes([UNNAMED_TENSOR], []) == ["output 0 (unnamed, tensor of int64) was removed"]


def test_unnamed_output_type_change_by_position():
    expected = ["output 0 (unnamed) changed type from long to tensor of int64"]
    assert _output_changes([UNNAMED_LONG], [UNNAMED_TENSOR]) == expected


def test_second_unnamed_output_removed_by_position():
    assert _output_changes([UNNAMED_LONG, UNNAMED_LONG], [UNNAMED_LONG]) == ["output 1 (unnamed, long) was removed"]


def test_named_output_removed_by_name():
    assert _output_changes([NAMED_SCORE], []) == ["output 'score' (double) was removed"]


def test_same_unnamed_outputs_have_no_changes():
    assert _output_changes([UNNAMED_TENSOR], [UNNAMED_TENSOR]) == []


def test_mixed_outputs_never_print_none():
    changes = _output_changes([UNNAMED_LONG, NAMED_SCORE], [UNNAMED_TENSOR])
    assert not any("None" in change for change in changes)
