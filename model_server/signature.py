"""MLflow model signatures: parsing, description and request validation.

An MLflow ``MLmodel`` file stores the signature as JSON strings under
``signature.inputs``, ``signature.outputs`` and ``signature.params``. Inputs are
either column-based (a table with named, typed columns) or tensor-based (numpy
arrays with a dtype and a shape, where -1 means any size).

The model server validates every request with this module before predicting, and
the registry imports it to store, describe and compare signatures. It imports only
numpy at module level (pandas only in ``InputTable.to_frame``), and nothing from
Django or MLflow.

Validation rules for column-based inputs:

- ``double``, ``float``: JSON numbers. Booleans and strings are rejected.
- ``long``, ``integer``: JSON integers, or numbers with no fractional part (3.0).
- ``boolean``: JSON true/false. ``string``: JSON strings. ``binary``: base64
  strings. ``datetime``: ISO 8601 strings.
- ``null`` is a missing value. It is rejected in a required column and allowed in a
  column with ``required: false``. An optional column may be left out entirely.
- Columns that the signature does not name are ignored, as the MLflow scoring
  server ignores them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

COLUMN_TYPES = ("double", "float", "long", "integer", "boolean", "string", "binary", "datetime")
NUMERIC_COLUMN_TYPES = frozenset({"double", "float", "long", "integer", "boolean"})
INTEGER_COLUMN_TYPES = frozenset({"long", "integer"})
_NUMBER_COLUMN_TYPES = frozenset({"double", "float", "long", "integer"})

# Numpy dtype that a column of each type becomes when it has no missing values.
COLUMN_DTYPES = {
    "double": np.dtype(np.float64),
    "float": np.dtype(np.float32),
    "long": np.dtype(np.int64),
    "integer": np.dtype(np.int32),
    "boolean": np.dtype(np.bool_),
    "string": np.dtype(object),
    "binary": np.dtype(object),
    "datetime": np.dtype("datetime64[ns]"),
}

# Open Inference Protocol v2 datatype of each column type.
COLUMN_V2_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}

_INTEGER_RANGES = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_NUMBER_TYPES = frozenset({int, float})


class SignatureError(ValueError):
    """Request data or a signature that does not match the expected form.

    The message names the column or tensor and the problem, and is safe to return
    to the client.
    """


@dataclass(frozen=True)
class ColumnSpec:
    """One named, typed column of a column-based signature."""

    name: str | None
    type: str
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            spec["name"] = self.name
        spec["required"] = self.required
        return spec

    def describe(self) -> str:
        qualifier = "required" if self.required else "optional"
        return f"{self.name}: {self.type} ({qualifier})"


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a tensor-based signature: numpy dtype and shape, -1 for any size."""

    dtype: str
    shape: tuple[int, ...]
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "tensor", "tensor-spec": {"dtype": self.dtype, "shape": list(self.shape)}}
        if self.name is not None:
            spec["name"] = self.name
        return spec

    def describe(self) -> str:
        label = self.name or "tensor"
        return f"{label}: {self.dtype} {list(self.shape)}"

    def matches_shape(self, shape: Sequence[int]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(expected in (-1, actual) for expected, actual in zip(self.shape, shape))


Spec = ColumnSpec | TensorSpec


def _parse_spec(raw: Mapping[str, Any], where: str) -> Spec:
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise SignatureError(f"{where}: invalid spec {raw!r}, expected an object with a 'type'")

    spec_type = raw["type"]
    name = raw.get("name")

    if spec_type == "tensor":
        tensor = raw.get("tensor-spec")
        if not isinstance(tensor, Mapping) or "dtype" not in tensor or "shape" not in tensor:
            raise SignatureError(f"{where}: tensor spec {raw!r} needs 'tensor-spec' with 'dtype' and 'shape'")
        try:
            np.dtype(tensor["dtype"])
        except TypeError as error:
            raise SignatureError(f"{where}: unknown tensor dtype {tensor['dtype']!r}") from error
        return TensorSpec(dtype=str(tensor["dtype"]), shape=tuple(int(size) for size in tensor["shape"]), name=name)

    if spec_type not in COLUMN_TYPES:
        raise SignatureError(
            f"{where}: unsupported column type {spec_type!r} for column {name!r}, "
            f"expected one of {', '.join(COLUMN_TYPES)}"
        )
    return ColumnSpec(name=name, type=spec_type, required=bool(raw.get("required", True)))


def _json_list(raw: Any, where: str) -> list | None:
    """Decode one part of an MLmodel signature, which MLflow stores as a JSON string of a list."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise SignatureError(f"signature {where} is not valid JSON: {error}") from error
    if not isinstance(raw, list):
        raise SignatureError(f"signature {where} must be a JSON list, got {type(raw).__name__}")
    return raw


def _parse_spec_list(raw: Any, where: str) -> list[Spec] | None:
    raw = _json_list(raw, where)
    if raw is None:
        return None

    specs = [_parse_spec(item, f"signature {where}[{index}]") for index, item in enumerate(raw)]
    kinds = {isinstance(spec, TensorSpec) for spec in specs}
    if len(kinds) > 1:
        raise SignatureError(f"signature {where} mixes column and tensor specs")
    return specs


@dataclass(frozen=True)
class ParamSpec:
    """One inference parameter of the signature, passed through to the model."""

    name: str
    type: str
    default: Any = None
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "shape": list(self.shape) if self.shape is not None else None,
        }


@dataclass(frozen=True)
class Signature:
    """Inputs, outputs and parameters of an MLflow model.

    ``inputs`` is a list of ``ColumnSpec`` or a list of ``TensorSpec``. ``outputs``
    and ``params`` are None when the model does not declare them. Equal signatures
    compare equal.
    """

    inputs: list[Spec]
    outputs: list[Spec] | None = None
    params: list[ParamSpec] | None = None

    # Derived lookups, built once in __post_init__.
    _column_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.is_column_based:
            names = [spec.name for spec in self.inputs]
            if any(name is None for name in names):
                raise SignatureError("signature inputs: every column spec needs a name")
            if len(set(names)) != len(names):
                raise SignatureError("signature inputs: column names must be unique")
            self._column_index.update({name: index for index, name in enumerate(names)})

    # --- construction and serialization ---

    @classmethod
    def from_mlmodel(cls, mlmodel: Mapping[str, Any]) -> Signature | None:
        """Parse the ``signature`` of a loaded MLmodel document, or return None when it has none."""
        raw = mlmodel.get("signature")
        if not raw:
            return None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Signature:
        """Parse a signature whose parts are JSON strings (as in MLmodel) or already-decoded lists."""
        inputs = _parse_spec_list(raw.get("inputs"), "inputs")
        if not inputs:
            raise SignatureError("signature inputs: missing or empty")
        outputs = _parse_spec_list(raw.get("outputs"), "outputs")
        params = _parse_params(raw.get("params"))
        return cls(inputs=inputs, outputs=outputs, params=params)

    def to_dict(self) -> dict[str, Any]:
        """Return the signature as plain JSON-ready lists, the inverse of ``from_dict``."""
        return {
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs] if self.outputs is not None else None,
            "params": [param.to_dict() for param in self.params] if self.params is not None else None,
        }

    def to_mlmodel(self) -> dict[str, str | None]:
        """Return the signature in MLmodel form, each part as a JSON string."""
        as_dict = self.to_dict()
        return {key: json.dumps(value) if value is not None else None for key, value in as_dict.items()}

    # --- description and comparison ---

    @property
    def is_column_based(self) -> bool:
        return isinstance(self.inputs[0], ColumnSpec)

    @property
    def column_names(self) -> list[str]:
        return [spec.name for spec in self.inputs] if self.is_column_based else []

    @property
    def is_numeric(self) -> bool:
        """True when every input column can be carried in one float64 matrix."""
        return self.is_column_based and all(spec.type in NUMERIC_COLUMN_TYPES for spec in self.inputs)

    @property
    def _takes_number_matrix(self) -> bool:
        """True when plain JSON numbers are valid in every column, which allows the fast path."""
        return self.is_column_based and all(spec.type in _NUMBER_COLUMN_TYPES for spec in self.inputs)

    def describe(self) -> list[str]:
        """Return one line per input, such as ``age: long (optional)``."""
        return [spec.describe() for spec in self.inputs]

    def input_differences(self, other: Signature) -> list[str]:
        """List how the inputs of ``other`` differ from these, one sentence per change.

        An empty list means that a request valid for one signature is valid for the
        other.
        """
        if self.is_column_based != other.is_column_based:
            return ["inputs changed between column-based and tensor-based"]

        if not self.is_column_based:
            old = [spec.describe() for spec in self.inputs]
            new = [spec.describe() for spec in other.inputs]
            return [] if old == new else [f"tensor inputs changed from {old} to {new}"]

        changes = []
        old_columns = {spec.name: spec for spec in self.inputs}
        new_columns = {spec.name: spec for spec in other.inputs}
        for name, spec in old_columns.items():
            if name not in new_columns:
                changes.append(f"column '{name}' was removed")
            elif new_columns[name].type != spec.type:
                changes.append(f"column '{name}' changed type from {spec.type} to {new_columns[name].type}")
            elif new_columns[name].required != spec.required:
                state = "required" if new_columns[name].required else "optional"
                changes.append(f"column '{name}' became {state}")
        for name, spec in new_columns.items():
            if name not in old_columns:
                state = "required" if spec.required else "optional"
                changes.append(f"column '{name}' was added ({spec.type}, {state})")
        return changes

    # --- validation of column-based requests ---

    def table_from_rows(self, rows: Any, columns: Sequence[Any] | None = None) -> InputTable:
        """Validate positional rows, as in ``dataframe_split`` or a 2-D tensor.

        ``columns`` names each position; without it the positions follow the
        signature's column order.
        """
        self._require_column_based()
        if not isinstance(rows, list):
            raise SignatureError(f"data must be a list of rows, got {_json_type(rows)}")

        specs: list[ColumnSpec] = self.inputs  # type: ignore[assignment]
        if columns is None:
            columns = self.column_names
        elif not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
            raise SignatureError("columns must be a list of column names")

        if self._takes_number_matrix and list(columns) == self.column_names:
            matrix = _numeric_matrix_from_rows(rows, len(specs))
            if matrix is not None and self._integer_values_are_valid(matrix):
                return InputTable(self, len(rows), matrix=matrix)

        return self._table_from_columns(_columns_from_rows(rows, columns), len(rows))

    def table_from_records(self, records: Any) -> InputTable:
        """Validate a list of objects, one per row, as in ``dataframe_records``."""
        self._require_column_based()
        if not isinstance(records, list):
            raise SignatureError(f"records must be a list of objects, got {_json_type(records)}")
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise SignatureError(f"record {index} must be an object mapping column names to values")

        names = self.column_names
        if self._takes_number_matrix:
            try:
                rows = [[record[name] for name in names] for record in records]
            except KeyError:
                rows = None
            if rows is not None:
                matrix = _numeric_matrix_from_rows(rows, len(names))
                if matrix is not None and self._integer_values_are_valid(matrix):
                    return InputTable(self, len(records), matrix=matrix)

        columns: dict[str, list[Any]] = {}
        for name in names:
            if any(name in record for record in records):
                columns[name] = [record.get(name) for record in records]
        return self._table_from_columns(columns, len(records))

    def table_from_columns(self, columns: Any) -> InputTable:
        """Validate a mapping of column name to a list of values, as in ``inputs`` or v2 tensors."""
        self._require_column_based()
        if not isinstance(columns, dict):
            raise SignatureError(f"inputs must be an object mapping column names to values, got {_json_type(columns)}")

        present = {name: columns[name] for name in self.column_names if name in columns}
        for name, values in present.items():
            if not isinstance(values, list):
                raise SignatureError(f"column '{name}': expected a list of values, got {_json_type(values)}")
        lengths = {name: len(values) for name, values in present.items()}

        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"'{name}' has {count}" for name, count in lengths.items())
            raise SignatureError(f"columns have different numbers of values: {detail}")
        n_rows = next(iter(lengths.values()), 0)

        if self._takes_number_matrix and len(present) == len(self.inputs):
            matrix = _numeric_matrix_from_columns([present[name] for name in self.column_names], n_rows)
            if matrix is not None and self._integer_values_are_valid(matrix):
                return InputTable(self, n_rows, matrix=matrix)

        return self._table_from_columns(present, n_rows)

    def _require_column_based(self) -> None:
        if not self.is_column_based:
            raise SignatureError("this model takes tensors, not named columns: send inputs or instances as nested lists")

    def _table_from_columns(self, columns: Mapping[str, list[Any]], n_rows: int) -> InputTable:
        """Check and convert each column on its own, so that errors name the column."""
        missing = [spec.name for spec in self.inputs if spec.required and spec.name not in columns]
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            raise SignatureError(f"missing required column{'s' if len(missing) > 1 else ''} {names}")

        arrays = []
        for spec in self.inputs:
            values = columns.get(spec.name)
            if values is None:
                values = [None] * n_rows
            arrays.append(convert_column(spec, values))
        return InputTable(self, n_rows, arrays=arrays)

    def _integer_values_are_valid(self, matrix: np.ndarray) -> bool:
        """Check integer columns of a float matrix for fractions and range.

        A False result sends the request down the per-column path, which builds the
        error message.
        """
        for index, spec in enumerate(self.inputs):
            if spec.type not in INTEGER_COLUMN_TYPES:
                continue
            column = matrix[:, index]
            low, high = _INTEGER_RANGES[spec.type]
            if not (np.all(np.floor(column) == column) and np.all((column >= low) & (column <= high))):
                return False
        return True

    # --- validation of tensor-based requests ---

    def tensors_from_value(self, value: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Validate a tensor request: one nested list, or an object of named nested lists."""
        if self.is_column_based:
            raise SignatureError("this model takes columns, not tensors")

        specs: list[TensorSpec] = self.inputs  # type: ignore[assignment]
        if len(specs) == 1 and specs[0].name is None:
            return convert_tensor(specs[0], value)
        if len(specs) == 1 and not isinstance(value, dict):
            return convert_tensor(specs[0], value)

        if not isinstance(value, dict):
            names = ", ".join(f"'{spec.name}'" for spec in specs)
            raise SignatureError(f"inputs must be an object with the tensors {names}")
        missing = [spec.name for spec in specs if spec.name not in value]
        if missing:
            raise SignatureError(f"missing tensor{'s' if len(missing) > 1 else ''} {', '.join(repr(n) for n in missing)}")
        return {spec.name: convert_tensor(spec, value[spec.name]) for spec in specs}


def _parse_params(raw: Any) -> list[ParamSpec] | None:
    raw = _json_list(raw, "params")
    if raw is None:
        return None

    params = []
    for item in raw:
        if not isinstance(item, Mapping) or "name" not in item or "type" not in item:
            raise SignatureError(f"signature params: invalid param spec {item!r}, expected 'name' and 'type'")
        shape = item.get("shape")
        params.append(
            ParamSpec(
                name=item["name"],
                type=item["type"],
                default=item.get("default"),
                shape=tuple(shape) if shape is not None else None,
            )
        )
    return params


class InputTable:
    """Validated column-based input, in signature column order.

    Numeric inputs without missing values arrive as one float64 ``matrix``. All
    other inputs arrive as one array per column (``arrays``). Either form converts
    to the other on demand.
    """

    __slots__ = ("signature", "n_rows", "_matrix", "_arrays")

    def __init__(
        self,
        signature: Signature,
        n_rows: int,
        matrix: np.ndarray | None = None,
        arrays: list[np.ndarray] | None = None,
    ) -> None:
        self.signature = signature
        self.n_rows = n_rows
        self._matrix = matrix
        self._arrays = arrays

    @property
    def arrays(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [
                self._matrix[:, index].astype(_dtype_without_nulls(spec))
                for index, spec in enumerate(self.signature.inputs)
            ]
        return self._arrays

    def to_matrix(self, column_order: Sequence[int] | None = None) -> np.ndarray:
        """Return a float64 matrix, with missing values as NaN. Numeric signatures only."""
        if self._matrix is None:
            columns = [_as_float_column(array) for array in self._arrays]
            self._matrix = np.column_stack(columns) if columns else np.empty((self.n_rows, 0))
        if column_order is None:
            return self._matrix
        return self._matrix[:, column_order]

    def to_frame(self):
        """Return a pandas DataFrame with one typed column per signature column.

        Integer columns with missing values become pandas' nullable ``Int64`` (or
        ``Int32``) so that the values stay integers.
        """
        import pandas as pd

        data = {}
        for spec, array in zip(self.signature.inputs, self.arrays):
            if spec.type in INTEGER_COLUMN_TYPES and array.dtype.kind == "f":
                data[spec.name] = pd.array(array, dtype="Int64" if spec.type == "long" else "Int32")
            else:
                data[spec.name] = array
        return pd.DataFrame(data, columns=self.signature.column_names)

    @staticmethod
    def concatenate(tables: Sequence[InputTable]) -> InputTable:
        """Join tables of the same signature into one, rows in order."""
        first = tables[0]
        n_rows = sum(table.n_rows for table in tables)
        if all(table._matrix is not None for table in tables):
            return InputTable(first.signature, n_rows, matrix=np.concatenate([table._matrix for table in tables]))

        arrays = []
        for index, spec in enumerate(first.signature.inputs):
            parts = [table.arrays[index] for table in tables]
            if spec.type in INTEGER_COLUMN_TYPES and len({part.dtype for part in parts}) > 1:
                # Some parts have missing values (float64 with NaN) and some do not (int).
                parts = [part.astype(np.float64) for part in parts]
            arrays.append(np.concatenate(parts))
        return InputTable(first.signature, n_rows, arrays=arrays)


# --- conversion helpers ---


def _json_type(value: Any) -> str:
    """Name a decoded JSON value's type the way JSON does, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _dtype_without_nulls(spec: ColumnSpec) -> np.dtype:
    return COLUMN_DTYPES[spec.type]


def _as_float_column(array: np.ndarray) -> np.ndarray:
    """Convert a numeric or boolean column to float64, with None (optional booleans) as NaN."""
    if array.dtype == object:
        return np.array([math.nan if value is None else float(value) for value in array], dtype=np.float64)
    return array.astype(np.float64)


def _numeric_matrix_from_rows(rows: list[Any], n_columns: int) -> np.ndarray | None:
    """Convert rows of plain JSON numbers into a float64 matrix, or return None.

    None means the rows need the per-column path: a value is not an int or float
    (null, boolean, string, nested list), or a row has the wrong length. Checking the
    set of value types first matters because numpy would silently turn booleans,
    None and numeric strings into floats.
    """
    if not rows:
        return np.empty((0, n_columns))
    try:
        value_types = set(map(type, chain.from_iterable(rows)))
    except TypeError:
        return None
    if not value_types <= _NUMBER_TYPES:
        return None
    if any(len(row) != n_columns for row in rows):
        return None
    try:
        return np.array(rows, dtype=np.float64)
    except (ValueError, OverflowError):
        return None


def _numeric_matrix_from_columns(columns: list[list[Any]], n_rows: int) -> np.ndarray | None:
    """Column-wise twin of ``_numeric_matrix_from_rows``."""
    if n_rows == 0:
        return np.empty((0, len(columns)))
    try:
        value_types = set(map(type, chain.from_iterable(columns)))
    except TypeError:
        return None
    if not value_types <= _NUMBER_TYPES:
        return None
    try:
        return np.array(columns, dtype=np.float64).T.copy()
    except (ValueError, OverflowError):
        return None


def _columns_from_rows(rows: list[Any], columns: Sequence[str]) -> dict[str, list[Any]]:
    n_columns = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise SignatureError(f"row {index} must be a list of values, got {_json_type(row)}")
        if len(row) != n_columns:
            raise SignatureError(f"row {index} has {len(row)} values, expected {n_columns} (one per column)")
    if len(set(columns)) != len(columns):
        raise SignatureError("columns must not repeat a name")
    return {name: [row[position] for row in rows] for position, name in enumerate(columns)}


def convert_column(spec: ColumnSpec, values: Iterable[Any]) -> np.ndarray:
    """Check every value of one column against its spec and return it as an array.

    Raises SignatureError naming the column, the row and the problem. Missing values
    in an optional numeric column become NaN, so an integer column with missing
    values comes back as float64.
    """
    values = list(values)
    has_nulls = False

    for row, value in enumerate(values):
        if value is None:
            if spec.required:
                raise SignatureError(f"column '{spec.name}': missing value in required column (row {row})")
            has_nulls = True
            continue
        problem = _check_value(spec, value)
        if problem:
            raise SignatureError(f"column '{spec.name}': {problem} (row {row})")

    if spec.type in ("double", "float", "long", "integer"):
        if has_nulls:
            return np.array([math.nan if value is None else value for value in values], dtype=np.float64)
        return np.array(values, dtype=COLUMN_DTYPES[spec.type])

    if spec.type == "boolean":
        if has_nulls:
            return np.array(values, dtype=object)
        return np.array(values, dtype=np.bool_)

    if spec.type == "binary":
        return _object_array([None if value is None else base64.b64decode(value, validate=True) for value in values])

    if spec.type == "datetime":
        return np.array(["NaT" if value is None else value for value in values], dtype="datetime64[ns]")

    return _object_array(values)


def _object_array(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _check_value(spec: ColumnSpec, value: Any) -> str | None:
    """Return why ``value`` does not fit the column type, or None when it fits."""
    kind = spec.type
    value_type = type(value)

    if kind in ("double", "float"):
        if value_type is int or value_type is float:
            return None
        return f"expected a number ({kind}), got {_json_type(value)} {_preview(value)}"

    if kind in INTEGER_COLUMN_TYPES:
        if value_type is float and value.is_integer():
            value = int(value)
            value_type = int
        if value_type is not int:
            return f"expected an integer ({kind}), got {_json_type(value)} {_preview(value)}"
        low, high = _INTEGER_RANGES[kind]
        if not low <= value <= high:
            return f"integer {value} is out of range for {kind}"
        return None

    if kind == "boolean":
        if value_type is bool:
            return None
        return f"expected true or false (boolean), got {_json_type(value)} {_preview(value)}"

    if kind == "string":
        if value_type is str:
            return None
        return f"expected a string, got {_json_type(value)} {_preview(value)}"

    if kind == "binary":
        if value_type is not str:
            return f"expected a base64 string (binary), got {_json_type(value)} {_preview(value)}"
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return f"invalid base64 string {_preview(value)}"
        return None

    if kind == "datetime":
        if value_type is not str:
            return f"expected an ISO 8601 string (datetime), got {_json_type(value)} {_preview(value)}"
        try:
            np.datetime64(value, "ns")
        except ValueError:
            return f"invalid ISO 8601 datetime {_preview(value)}"
        return None

    return f"unsupported column type {kind}"


def _preview(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, list, dict)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def convert_tensor(spec: TensorSpec, value: Any) -> np.ndarray:
    """Convert a nested list into an array of the spec's dtype and check its shape."""
    label = f"tensor '{spec.name}'" if spec.name else "tensor"
    dtype = np.dtype(spec.dtype)

    try:
        array = np.asarray(value)
    except ValueError as error:
        raise SignatureError(f"{label}: ragged nested lists, every row must have the same length") from error
    if array.dtype == object:
        raise SignatureError(f"{label}: ragged nested lists or values of mixed types")

    wants_number = dtype.kind in "iuf"
    if wants_number and array.dtype.kind not in "iuf":
        raise SignatureError(f"{label}: expected numbers ({spec.dtype}), got {_kind_name(array.dtype)}")
    if dtype.kind == "b" and array.dtype.kind != "b":
        raise SignatureError(f"{label}: expected true or false (bool), got {_kind_name(array.dtype)}")
    if dtype.kind in "iu" and array.dtype.kind == "f":
        if not (np.all(np.isfinite(array)) and np.all(np.floor(array) == array)):
            raise SignatureError(f"{label}: expected integers ({spec.dtype}), got numbers with fractions")

    if not spec.matches_shape(array.shape):
        raise SignatureError(f"{label}: expected shape {list(spec.shape)}, got {list(array.shape)}")

    try:
        return array.astype(dtype, copy=False)
    except (TypeError, ValueError, OverflowError) as error:
        raise SignatureError(f"{label}: values do not convert to {spec.dtype}: {error}") from error


_KIND_NAMES = {"U": "strings", "S": "bytes", "b": "booleans", "f": "floats", "i": "integers", "u": "integers"}


def _kind_name(dtype: np.dtype) -> str:
    return _KIND_NAMES.get(dtype.kind, str(dtype))
