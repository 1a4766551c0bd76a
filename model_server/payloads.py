"""Request bodies in, model inputs out; model outputs in, response bodies out.

Two wire formats:

- MLflow scoring (``POST /invocations``): a JSON object with one of
  ``dataframe_split``, ``dataframe_records``, ``inputs`` or ``instances`` (and
  optional ``params``), or a CSV body with a header row. The response is
  ``{"predictions": ...}``.
- Open Inference Protocol v2 (``POST /v2/models/{name}/infer``): a JSON object with
  ``inputs``, a list of tensors with ``name``, ``shape``, ``datatype`` and ``data``.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from typing import Any

import numpy as np
import orjson

from model_server.signature import Signature, SignatureError

MLFLOW_INPUT_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")

V2_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}
)
_V2_INTEGER_DATATYPES = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
_V2_FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
_NUMPY_KIND_TO_V2 = {"b": "BOOL", "U": "BYTES", "S": "BYTES", "O": "BYTES", "M": "BYTES"}


class RequestError(Exception):
    """A request that the server rejects, with the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"invalid JSON: {error}") from error


# --- MLflow scoring format ---


def parse_mlflow_json(body: bytes, signature: Signature | None) -> tuple[Any, dict[str, Any] | None]:
    """Return the model input and the params of an MLflow scoring request."""
    document = parse_json(body)
    if not isinstance(document, dict):
        raise RequestError(400, f"the request body must be a JSON object with one of {', '.join(MLFLOW_INPUT_KEYS)}")

    keys = [key for key in MLFLOW_INPUT_KEYS if key in document]
    if len(keys) != 1:
        found = f"found {', '.join(keys)}" if keys else "found none"
        raise RequestError(400, f"the request needs exactly one of {', '.join(MLFLOW_INPUT_KEYS)}, {found}")

    params = document.get("params")
    if params is not None and not isinstance(params, dict):
        raise RequestError(400, "params must be a JSON object")

    key = keys[0]
    try:
        return _mlflow_input(key, document[key], signature), params
    except SignatureError as error:
        raise RequestError(400, str(error)) from error


def _mlflow_input(key: str, value: Any, signature: Signature | None) -> Any:
    if signature is None:
        return _mlflow_input_without_signature(key, value)

    if not signature.is_column_based:
        if key == "dataframe_split":
            return signature.tensors_from_value(_split_data(value))
        if key == "dataframe_records":
            raise SignatureError("this model takes tensors: send inputs or instances, not dataframe_records")
        return signature.tensors_from_value(value)

    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise SignatureError("dataframe_split must be an object with 'columns' and 'data'")
        return signature.table_from_rows(_split_data(value), value.get("columns"))
    if key == "dataframe_records":
        return signature.table_from_records(value)

    # inputs and instances: an object of columns, a list of records, or positional rows.
    if isinstance(value, dict):
        return signature.table_from_columns(value)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return signature.table_from_records(value)
    if isinstance(value, list) and value and isinstance(value[0], list):
        return signature.table_from_rows(value)
    if isinstance(value, list) and len(signature.inputs) == 1:
        return signature.table_from_columns({signature.inputs[0].name: value})
    raise SignatureError(
        f"{key} must be an object of columns, a list of records or a list of rows "
        f"with one value per column ({len(signature.inputs)})"
    )


def _split_data(value: Any) -> Any:
    if not isinstance(value, dict) or "data" not in value:
        raise SignatureError("dataframe_split must be an object with 'data' (and usually 'columns')")
    return value["data"]


def _mlflow_input_without_signature(key: str, value: Any) -> Any:
    """Build a DataFrame or array with no checks, as MLflow does for a model without signature."""
    import pandas as pd

    try:
        if key == "dataframe_split":
            if not isinstance(value, dict) or "data" not in value:
                raise SignatureError("dataframe_split must be an object with 'columns' and 'data'")
            return pd.DataFrame(value["data"], columns=value.get("columns"))
        if key == "dataframe_records":
            return pd.DataFrame.from_records(value)
        if isinstance(value, dict):
            return {name: np.asarray(item) for name, item in value.items()}
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        raise SignatureError(f"{key} cannot be converted: {error}") from error


def parse_mlflow_csv(body: bytes, signature: Signature | None) -> Any:
    """Parse a CSV body whose first row names the columns. Empty fields are missing values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(400, f"the CSV body is not valid UTF-8: {error}") from error

    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RequestError(400, "the CSV body is empty, expected a header row with the column names")
    header, data_rows = rows[0], [row for row in rows[1:] if row]

    for index, row in enumerate(data_rows):
        if len(row) != len(header):
            raise RequestError(400, f"CSV row {index + 1} has {len(row)} fields, the header has {len(header)}")

    if signature is None:
        import pandas as pd

        return pd.read_csv(io.StringIO(text))
    if not signature.is_column_based:
        raise RequestError(400, "this model takes tensors, which CSV cannot carry: send JSON inputs or instances")

    types = {spec.name: spec.type for spec in signature.inputs}
    columns = {}
    for position, name in enumerate(header):
        if name in types:
            columns[name] = [_parse_csv_field(name, types[name], row[position], index) for index, row in enumerate(data_rows)]
    try:
        return signature.table_from_columns(columns)
    except SignatureError as error:
        raise RequestError(400, str(error)) from error


def _parse_csv_field(column: str, column_type: str, text: str, row: int) -> Any:
    """Convert one CSV field to the JSON value that the column type expects."""
    if text == "":
        return None
    try:
        if column_type in ("double", "float"):
            return float(text)
        if column_type in ("long", "integer"):
            return float(text) if any(mark in text for mark in ".eE") else int(text)
        if column_type == "boolean":
            lowered = text.strip().lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0"):
                return False
            raise ValueError(text)
    except ValueError as error:
        raise RequestError(400, f"column '{column}': invalid {column_type} value {text!r} (row {row})") from error
    return text


# --- Open Inference Protocol v2 ---


def parse_v2_request(body: bytes, signature: Signature | None) -> tuple[Any, dict[str, Any] | None, Any]:
    """Return the model input, the parameters and the request id of a v2 infer request."""
    document = parse_json(body)
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list) or not document["inputs"]:
        raise RequestError(400, "the request body must be a JSON object with a non-empty 'inputs' list of tensors")

    parameters = document.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise RequestError(400, "parameters must be a JSON object")

    tensors = [_read_v2_tensor(index, tensor) for index, tensor in enumerate(document["inputs"])]
    try:
        model_input = _v2_model_input(tensors, signature)
    except SignatureError as error:
        raise RequestError(400, str(error)) from error
    return model_input, parameters, document.get("id")


def _read_v2_tensor(index: int, tensor: Any) -> tuple[str, list[int], str, list[Any]]:
    """Check one request tensor and return its name, shape, datatype and flat data."""
    if not isinstance(tensor, dict):
        raise RequestError(400, f"inputs[{index}] must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(400, f"inputs[{index}]: missing tensor name")

    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
        raise RequestError(400, f"tensor '{name}': shape must be a list of non-negative integers, got {shape!r}")
    datatype = tensor.get("datatype")
    if datatype not in V2_DATATYPES:
        raise RequestError(400, f"tensor '{name}': unknown datatype {datatype!r}, expected one of {', '.join(sorted(V2_DATATYPES))}")
    if "data" not in tensor:
        raise RequestError(400, f"tensor '{name}': missing data")

    data = tensor["data"]
    if not isinstance(data, list):
        data = [data]
    elif data and isinstance(data[0], list):
        data = _flatten(data)

    expected = math.prod(shape)
    if len(data) != expected:
        raise RequestError(400, f"tensor '{name}': shape {shape} needs {expected} values, got {len(data)}")
    _check_v2_datatype(name, datatype, data)
    return name, shape, datatype, data


def _flatten(nested: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(nested)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _check_v2_datatype(name: str, datatype: str, data: list[Any]) -> None:
    """Check that the values are of the tensor's declared datatype; null is allowed as a missing value."""
    value_types = set(map(type, data))
    value_types.discard(type(None))

    if datatype in _V2_FLOAT_DATATYPES:
        allowed = {int, float}
    elif datatype in _V2_INTEGER_DATATYPES:
        allowed = {int}
        if float in value_types and all(value is None or type(value) is int or (type(value) is float and value.is_integer()) for value in data):
            allowed = {int, float}
    elif datatype == "BOOL":
        allowed = {bool}
    else:
        allowed = {str}

    wrong = value_types - allowed
    if wrong:
        found = ", ".join(sorted(_type_label(value_type) for value_type in wrong))
        raise RequestError(400, f"tensor '{name}': datatype {datatype} does not match values of type {found}")


def _type_label(value_type: type) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}.get(value_type, value_type.__name__)


def _v2_model_input(tensors: list[tuple[str, list[int], str, list[Any]]], signature: Signature | None) -> Any:
    if signature is None:
        if len(tensors) == 1:
            _, shape, _, data = tensors[0]
            return np.array(data).reshape(shape)
        import pandas as pd

        return pd.DataFrame({name: data for name, _, _, data in tensors})

    if not signature.is_column_based:
        by_name = {name: np.array(data).reshape(shape) for name, shape, _, data in tensors}
        if len(signature.inputs) == 1:
            return signature.tensors_from_value(next(iter(by_name.values())))
        return signature.tensors_from_value(by_name)

    n_columns = len(signature.inputs)
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][1][1] == n_columns:
        _, (n_rows, _), _, data = tensors[0]
        rows = [data[start : start + n_columns] for start in range(0, n_rows * n_columns, n_columns)]
        return signature.table_from_rows(rows)

    columns = {}
    for name, shape, _, data in tensors:
        if len(shape) > 2 or len(shape) == 2 and shape[1] != 1:
            raise SignatureError(
                f"tensor '{name}': a column tensor must have shape [n] or [n, 1], got {shape}; "
                f"a single tensor of shape [n, {n_columns}] may carry all columns"
            )
        columns[name] = data
    return signature.table_from_columns(columns)


# --- responses ---


def json_default(value: Any) -> Any:
    """Convert what orjson cannot serialize on its own (object arrays, numpy scalars, pandas values)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=json_default)


def to_mlflow_predictions(output: Any) -> Any:
    """Shape a model output as MLflow's scoring server does: DataFrames become records, arrays lists."""
    if isinstance(output, np.ndarray):
        return output if output.dtype.kind in "biuf" and output.flags.c_contiguous else output.tolist()
    module = type(output).__module__
    if module.startswith("pandas"):
        if hasattr(output, "to_dict") and hasattr(output, "columns"):
            return _frame_records(output)
        if hasattr(output, "tolist"):
            return output.tolist()
    if isinstance(output, dict):
        return {key: to_mlflow_predictions(value) for key, value in output.items()}
    if isinstance(output, tuple):
        return list(output)
    return output


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    records = frame.to_dict(orient="records")
    return [{str(key): _none_for_nan(value) for key, value in record.items()} for record in records]


def _none_for_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def v2_datatype(array: np.ndarray) -> str:
    if array.dtype.kind in "iuf":
        prefix = {"i": "INT", "u": "UINT", "f": "FP"}[array.dtype.kind]
        return f"{prefix}{array.dtype.itemsize * 8}"
    return _NUMPY_KIND_TO_V2.get(array.dtype.kind, "BYTES")


def to_v2_outputs(output: Any, default_name: str) -> list[dict[str, Any]]:
    """Turn a model output into v2 output tensors: one per DataFrame column or dict key, else one."""
    module = type(output).__module__
    if module.startswith("pandas") and hasattr(output, "columns"):
        return [_v2_tensor(str(name), output[name].to_numpy()) for name in output.columns]
    if module.startswith("pandas"):
        return [_v2_tensor(str(output.name) if output.name is not None else default_name, output.to_numpy())]
    if isinstance(output, dict):
        return [_v2_tensor(str(name), np.asarray(value)) for name, value in output.items()]
    return [_v2_tensor(default_name, np.asarray(output))]


def _v2_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    flat = array.reshape(-1)
    if array.dtype.kind == "f" and np.isnan(flat).any():
        data: Any = [None if math.isnan(value) else value for value in flat.tolist()]
    elif array.dtype.kind in "biuf":
        data = np.ascontiguousarray(flat)
    else:
        data = [json_default(value) if not isinstance(value, (str, int, float, bool, type(None))) else value for value in flat.tolist()]
    return {"name": name, "shape": list(array.shape), "datatype": v2_datatype(array), "data": data}
