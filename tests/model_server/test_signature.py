"""Unit tests for model_server.signature, without a server."""

import json

import numpy as np
import pytest

from model_server.signature import ColumnSpec, InputTable, Signature, SignatureError, TensorSpec

MLMODEL = {
    "signature": {
        "inputs": json.dumps(
            [
                {"type": "double", "name": "height", "required": True},
                {"type": "long", "name": "age", "required": False},
                {"type": "string", "name": "city", "required": True},
            ]
        ),
        "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]),
        "params": None,
    }
}
NUMERIC = Signature.from_dict({"inputs": [{"type": "double", "name": "x"}, {"type": "long", "name": "n"}]})
TENSOR = Signature.from_dict({"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]})


@pytest.fixture
def signature():
    return Signature.from_mlmodel(MLMODEL)


def test_from_mlmodel_reads_column_names(signature):
    assert [spec.name for spec in signature.inputs] == ["height", "age", "city"]


def test_from_mlmodel_reads_types(signature):
    assert [spec.type for spec in signature.inputs] == ["double", "long", "string"]


def test_from_mlmodel_reads_required(signature):
    assert [spec.required for spec in signature.inputs] == [True, False, True]


def test_from_mlmodel_reads_tensor_outputs(signature):
    assert signature.outputs == [TensorSpec(dtype="int64", shape=(-1,))]


def test_from_mlmodel_without_signature_returns_none():
    assert Signature.from_mlmodel({"flavors": {}}) is None


def test_to_dict_round_trips(signature):
    assert Signature.from_dict(signature.to_dict()) == signature


def test_to_mlmodel_round_trips(signature):
    assert Signature.from_dict(signature.to_mlmodel()) == signature


def test_to_dict_lists_column_specs(signature):
    assert signature.to_dict()["inputs"][1] == {"type": "long", "name": "age", "required": False}


def test_describe_lists_columns(signature):
    assert signature.describe() == ["height: double (required)", "age: long (optional)", "city: string (required)"]


def test_from_dict_unknown_type_raises():
    with pytest.raises(SignatureError, match="'weight'"):
        Signature.from_dict({"inputs": [{"type": "decimal", "name": "weight"}]})


def test_from_dict_duplicate_names_raises():
    with pytest.raises(SignatureError, match="unique"):
        Signature.from_dict({"inputs": [{"type": "double", "name": "x"}, {"type": "long", "name": "x"}]})


def test_input_differences_equal_signatures_is_empty(signature):
    assert signature.input_differences(signature) == []


def test_input_differences_names_changed_column(signature):
    changed = Signature(inputs=[ColumnSpec("height", "float"), signature.inputs[1], signature.inputs[2]])
    assert signature.input_differences(changed) == ["column 'height' changed type from double to float"]


def test_input_differences_names_added_and_removed_columns(signature):
    changed = Signature(inputs=[signature.inputs[0], signature.inputs[1], ColumnSpec("country", "string")])
    assert signature.input_differences(changed) == [
        "column 'city' was removed",
        "column 'country' was added (string, required)",
    ]


def test_rows_numeric_builds_float_matrix():
    table = NUMERIC.table_from_rows([[1.5, 2], [3.0, 4]])
    assert table.to_matrix().tolist() == [[1.5, 2.0], [3.0, 4.0]]


def test_rows_reordered_columns_follow_signature():
    table = NUMERIC.table_from_rows([[2, 1.5]], columns=["n", "x"])
    assert table.to_matrix().tolist() == [[1.5, 2.0]]


def test_rows_unknown_column_is_ignored():
    table = NUMERIC.table_from_rows([[1.5, 2, "extra"]], columns=["x", "n", "comment"])
    assert table.to_matrix().tolist() == [[1.5, 2.0]]


def test_rows_string_in_double_column_raises():
    with pytest.raises(SignatureError, match="column 'x': expected a number"):
        NUMERIC.table_from_rows([["1.5", 2]])


def test_rows_boolean_in_double_column_raises():
    with pytest.raises(SignatureError, match="column 'x'"):
        NUMERIC.table_from_rows([[True, 2]])


def test_rows_fraction_in_long_column_raises():
    with pytest.raises(SignatureError, match="column 'n': expected an integer"):
        NUMERIC.table_from_rows([[1.5, 2.5]])


def test_rows_integral_float_in_long_column_is_accepted():
    table = NUMERIC.table_from_rows([[1.5, 2.0]])
    assert table.arrays[1].tolist() == [2]


def test_rows_null_in_required_column_raises():
    with pytest.raises(SignatureError, match="column 'x': missing value in required column"):
        NUMERIC.table_from_rows([[None, 2]])


def test_rows_short_row_raises():
    with pytest.raises(SignatureError, match="row 0 has 1 values, expected 2"):
        NUMERIC.table_from_rows([[1.5]])


def test_records_missing_column_raises():
    with pytest.raises(SignatureError, match="missing required column 'n'"):
        NUMERIC.table_from_records([{"x": 1.0}])


def test_records_missing_optional_column_is_null(signature):
    table = signature.table_from_records([{"height": 1.8, "city": "Oslo"}])
    assert np.isnan(table.arrays[1][0])


def test_records_nullable_long_keeps_integers_in_frame(signature):
    frame = signature.table_from_records([{"height": 1.8, "age": None, "city": "Oslo"}, {"height": 1.6, "age": 41, "city": "Rome"}]).to_frame()
    assert str(frame["age"].dtype) == "Int64"


def test_records_nullable_long_matrix_has_nan():
    signature = Signature.from_dict({"inputs": [{"type": "long", "name": "age", "required": False}]})
    matrix = signature.table_from_records([{"age": None}, {"age": 3}]).to_matrix()
    assert np.isnan(matrix[0, 0])


def test_columns_different_lengths_raise():
    with pytest.raises(SignatureError, match="different numbers of values"):
        NUMERIC.table_from_columns({"x": [1.0, 2.0], "n": [1]})


def test_columns_string_column_accepts_strings(signature):
    table = signature.table_from_columns({"height": [1.8], "age": [3], "city": ["Oslo"]})
    assert table.arrays[2].tolist() == ["Oslo"]


def test_columns_number_in_string_column_raises(signature):
    with pytest.raises(SignatureError, match="column 'city': expected a string"):
        signature.table_from_columns({"height": [1.8], "age": [3], "city": [7]})


def test_long_out_of_range_raises():
    with pytest.raises(SignatureError, match="column 'n': integer"):
        NUMERIC.table_from_rows([[1.0, 2**64]])


def test_boolean_column_rejects_integer():
    signature = Signature.from_dict({"inputs": [{"type": "boolean", "name": "flag"}]})
    with pytest.raises(SignatureError, match="column 'flag': expected true or false"):
        signature.table_from_rows([[1]])


def test_datetime_column_rejects_invalid_string():
    signature = Signature.from_dict({"inputs": [{"type": "datetime", "name": "at"}]})
    with pytest.raises(SignatureError, match="column 'at': invalid ISO 8601"):
        signature.table_from_rows([["yesterday"]])


def test_binary_column_decodes_base64():
    signature = Signature.from_dict({"inputs": [{"type": "binary", "name": "blob"}]})
    assert signature.table_from_rows([["aGk="]]).arrays[0].tolist() == [b"hi"]


def test_concatenate_keeps_row_order():
    tables = [NUMERIC.table_from_rows([[1.0, 1]]), NUMERIC.table_from_rows([[2.0, 2], [3.0, 3]])]
    assert InputTable.concatenate(tables).to_matrix()[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_tensor_wrong_shape_raises():
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 3\], got \[1, 2\]"):
        TENSOR.tensors_from_value([[1.0, 2.0]])


def test_tensor_converts_to_dtype():
    assert TENSOR.tensors_from_value([[1, 2, 3]]).dtype == np.float64


def test_tensor_strings_raise():
    with pytest.raises(SignatureError, match="expected numbers"):
        TENSOR.tensors_from_value([["a", "b", "c"]])


def test_tensor_signature_rejects_rows():
    with pytest.raises(SignatureError, match="this model takes tensors"):
        TENSOR.table_from_rows([[1.0, 2.0, 3.0]])
