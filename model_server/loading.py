"""Load an MLflow model directory into something that predicts on validated input.

Two paths:

- ``sklearn`` flavor: load the fitted estimator itself (skops, pickle or
  cloudpickle) and call its predict method on numpy arrays. This skips MLflow's
  pyfunc wrapper, its pandas conversion and its schema checks, which dominate the
  cost of a 1-row prediction.
- any other flavor: ``mlflow.pyfunc.load_model``. MLflow is imported only here
  because ``import mlflow`` takes more than a second.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from model_server.signature import InputTable, Signature, SignatureError

logger = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """The model directory cannot be loaded. The message says why."""


@dataclass
class LoadedModel:
    """A loaded model with the metadata that the routes serve.

    ``predict`` takes the validated request input (an ``InputTable``, an array, a
    dict of arrays, or a raw value when the model has no signature) and returns the
    model's raw output.
    """

    model_dir: Path
    flavor: str
    signature: Signature | None
    input_example: Any
    mlmodel: dict[str, Any]
    predict: Callable[[Any, dict[str, Any] | None], Any]
    predict_function: str = "predict"
    # True when predictions are independent per row, so several requests may share one predict call.
    rows_are_independent: bool = False
    # True when predict is fast and may run on the event loop thread.
    runs_inline: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """Parse the MLmodel file of a model directory."""
    path = model_dir / "MLmodel"
    if not model_dir.is_dir():
        raise ModelLoadError(f"{model_dir} is not a directory")
    if not path.is_file():
        raise ModelLoadError(f"no MLmodel file in {model_dir}, expected an MLflow model directory")
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ModelLoadError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise ModelLoadError(f"{path} has no 'flavors' section")
    return document


def read_input_example(model_dir: Path, mlmodel: dict[str, Any]) -> Any:
    """Return the saved input example as decoded JSON, or None when there is none or it cannot be read."""
    info = mlmodel.get("saved_input_example_info")
    if not isinstance(info, dict) or "artifact_path" not in info:
        return None

    path = model_dir / info["artifact_path"]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        logger.warning("Ignoring the input example %s: %s", path, error)
        return None


def load_model(model_dir: str | os.PathLike[str]) -> LoadedModel:
    """Load the model in ``model_dir`` through the sklearn fast path or the pyfunc path.

    Raises ModelLoadError with the reason when any step fails.
    """
    model_dir = Path(model_dir)
    mlmodel = read_mlmodel(model_dir)

    try:
        signature = Signature.from_mlmodel(mlmodel)
    except SignatureError as error:
        raise ModelLoadError(f"invalid signature in MLmodel: {error}") from error
    input_example = read_input_example(model_dir, mlmodel)

    flavors = mlmodel["flavors"]
    if "sklearn" in flavors:
        model = _load_sklearn(model_dir, mlmodel, signature, input_example)
    elif "python_function" in flavors:
        model = _load_pyfunc(model_dir, mlmodel, signature, input_example)
    else:
        raise ModelLoadError(f"no python_function or sklearn flavor in MLmodel (flavors: {', '.join(flavors)})")

    logger.info(
        "Loaded model %s: flavor %s, predict function %s, input %s",
        model_dir,
        model.flavor,
        model.predict_function,
        model.details.get("input_form", "as sent"),
    )
    return model


# --- sklearn fast path ---


def _load_sklearn_estimator(model_dir: Path, flavor: dict[str, Any]) -> Any:
    """Deserialize the fitted estimator in the format that MLmodel names."""
    model_file = model_dir / flavor.get("pickled_model", "model.pkl")
    serialization_format = flavor.get("serialization_format", "cloudpickle")
    if not model_file.is_file():
        raise ModelLoadError(f"model file {model_file} not found")

    if serialization_format == "skops":
        import skops.io

        # skops refuses types outside its default allow-list unless they are passed as
        # trusted. The MLmodel's skops_trusted_types (set by whoever logged the model)
        # decides which of the file's types may load.
        allowed = set(flavor.get("skops_trusted_types") or [])
        untrusted = skops.io.get_untrusted_types(file=model_file)
        refused = sorted(set(untrusted) - allowed)
        if refused:
            raise ModelLoadError(
                f"{model_file} contains types that skops does not trust and that MLmodel's "
                f"skops_trusted_types does not list: {', '.join(refused)}"
            )
        return skops.io.load(model_file, trusted=untrusted)

    if serialization_format in ("pickle", "cloudpickle"):
        # Same switch as MLflow 3.17 uses before unpickling a model (default true).
        if os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").lower() in ("false", "0"):
            raise ModelLoadError(
                f"{model_file} is a {serialization_format} file and MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false"
            )
        with model_file.open("rb") as handle:
            if serialization_format == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(handle)
            return pickle.load(handle)

    raise ModelLoadError(
        f"unknown sklearn serialization_format {serialization_format!r}, expected skops, pickle or cloudpickle"
    )


def _load_sklearn(model_dir: Path, mlmodel: dict[str, Any], signature: Signature | None, input_example: Any) -> LoadedModel:
    flavor = mlmodel["flavors"]["sklearn"]
    pyfunc_flavor = mlmodel["flavors"].get("python_function", {})

    try:
        estimator = _load_sklearn_estimator(model_dir, flavor)
    except ModelLoadError:
        raise
    except Exception as error:  # Unpickling can raise anything the model's classes raise.
        raise ModelLoadError(f"cannot deserialize the sklearn model: {type(error).__name__}: {error}") from error

    predict_function = pyfunc_flavor.get("predict_fn", "predict")
    method = getattr(estimator, predict_function, None)
    if not callable(method):
        raise ModelLoadError(f"the sklearn model has no method {predict_function!r} (predict_fn in MLmodel)")

    model = LoadedModel(
        model_dir=model_dir,
        flavor="sklearn",
        signature=signature,
        input_example=input_example,
        mlmodel=mlmodel,
        predict=_ignore_params(method),
        predict_function=predict_function,
        rows_are_independent=True,
        runs_inline=True,
    )

    if signature is not None and signature.is_column_based:
        model.predict = _choose_table_input(estimator, method, signature, input_example, model.details)
    else:
        model.details["input_form"] = "tensor" if signature is not None else "as sent"
    return model


def _ignore_params(method: Callable[[Any], Any]) -> Callable[[Any, dict[str, Any] | None], Any]:
    """Adapt an estimator method to the (input, params) form; sklearn's predict takes no params."""

    def predict(model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return method(model_input)

    return predict


def _choose_table_input(
    estimator: Any, method: Callable[[Any], Any], signature: Signature, input_example: Any, details: dict[str, Any]
) -> Callable[[InputTable, dict[str, Any] | None], Any]:
    """Pick how a validated table reaches the estimator: float matrix or DataFrame.

    A float matrix avoids building a DataFrame per request, which costs several
    times the predict itself on a small pipeline. It is used when every column is
    numeric and, for an estimator fitted on a DataFrame, when the fitted feature
    names are the signature's columns; the matrix then follows the fitted column
    order. When the input example exists, both forms must give equal predictions on
    it, otherwise the DataFrame form is kept.
    """
    def predict_frame(table: InputTable, params: dict[str, Any] | None = None) -> Any:
        return method(table.to_frame())

    details["input_form"] = "DataFrame"
    if not signature.is_numeric:
        return predict_frame

    column_order = None
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None:
        fitted_names = [str(name) for name in fitted_names]
        if sorted(fitted_names) != sorted(signature.column_names):
            logger.warning(
                "The estimator was fitted on columns that differ from the signature's; predicting on DataFrames"
            )
            return predict_frame
        position = {name: index for index, name in enumerate(signature.column_names)}
        column_order = [position[name] for name in fitted_names]
        if column_order == list(range(len(column_order))):
            column_order = None

        # The matrix carries the fitted column order, so sklearn's warning that the
        # input has no feature names is expected here. Python's warning registry
        # does not keep it quiet, because sklearn's own catch_warnings blocks reset
        # the registry, and printing it costs more than the predict.
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)

    def predict_matrix(table: InputTable, params: dict[str, Any] | None = None) -> Any:
        return method(table.to_matrix(column_order))

    table = _example_table(signature, input_example)
    if table is not None:
        try:
            from_matrix = predict_matrix(table)
            from_frame = predict_frame(table)
        except Exception as error:
            logger.warning("The input example failed on a float matrix (%s); predicting on DataFrames", error)
            return predict_frame
        if not _outputs_equal(from_matrix, from_frame):
            logger.warning("Predictions on a float matrix differ from those on a DataFrame; predicting on DataFrames")
            return predict_frame

    details["input_form"] = "float matrix"
    return predict_matrix


def _example_table(signature: Signature, input_example: Any) -> InputTable | None:
    """Turn a saved input example (pandas split orient) into a validated table, when possible."""
    if not isinstance(input_example, dict) or "data" not in input_example:
        return None
    try:
        return signature.table_from_rows(input_example["data"], input_example.get("columns"))
    except SignatureError as error:
        logger.warning("The saved input example does not match the signature: %s", error)
        return None


def _outputs_equal(left: Any, right: Any) -> bool:
    try:
        left_array = np.asarray(left)
        right_array = np.asarray(right)
    except Exception:
        return False
    if left_array.shape != right_array.shape:
        return False
    if left_array.dtype.kind in "fc":
        return bool(np.allclose(left_array, right_array, equal_nan=True))
    return bool(np.array_equal(left_array, right_array))


# --- generic pyfunc path ---


def _load_pyfunc(model_dir: Path, mlmodel: dict[str, Any], signature: Signature | None, input_example: Any) -> LoadedModel:
    try:
        import mlflow.pyfunc

        pyfunc_model = mlflow.pyfunc.load_model(str(model_dir))
    except Exception as error:  # MLflow and the model's own loader can raise anything.
        raise ModelLoadError(f"mlflow.pyfunc.load_model failed: {type(error).__name__}: {error}") from error

    flavor_name = mlmodel["flavors"]["python_function"].get("loader_module", "python_function")

    def predict(model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if isinstance(model_input, InputTable):
            return _predict_pyfunc_table(pyfunc_model, model_input, params)
        return pyfunc_model.predict(model_input, params=params)

    return LoadedModel(
        model_dir=model_dir,
        flavor=flavor_name,
        signature=signature,
        input_example=input_example,
        mlmodel=mlmodel,
        predict=predict,
        predict_function="pyfunc.predict",
        details={"input_form": "DataFrame" if signature is not None and signature.is_column_based else "as sent"},
    )


def _predict_pyfunc_table(pyfunc_model: Any, table: InputTable, params: dict[str, Any] | None) -> Any:
    """Predict on a DataFrame, bypassing MLflow's schema check only for nullable integer columns.

    MLflow 3.17.2 rejects missing values in a ``long`` or ``integer`` column even
    when the column has ``required: false`` ("Can not safely convert float64 to
    int64"), for float NaN and for pandas ``Int64`` alike. This server has already
    validated the table against the same signature, so in that case it calls the
    predict method of the model implementation directly (``_model_impl`` is marked
    as a stable developer API in MLflow 3.17.2).
    """
    frame = table.to_frame()
    has_nullable_integers = any(str(dtype) in ("Int64", "Int32") for dtype in frame.dtypes)
    if not has_nullable_integers:
        return pyfunc_model.predict(frame, params=params)

    predict_function_name = pyfunc_model.metadata.flavors["python_function"].get("predict_fn", "predict")
    predict_function = getattr(pyfunc_model._model_impl, predict_function_name)
    if "params" in inspect.signature(predict_function).parameters:
        return predict_function(frame, params=params)
    return predict_function(frame)
