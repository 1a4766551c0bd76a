"""Small MLflow models for the server tests, saved with MLflow's own save_model functions."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

# The server process cannot import this test module, so the PythonModel classes
# below are pickled with their code.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def save_breast_cancer_pipeline(path: Path) -> Path:
    """StandardScaler + LogisticRegression on the breast-cancer data, signature inferred from the DataFrame."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
    signature = infer_signature(features, pipeline.predict(features))
    mlflow.sklearn.save_model(pipeline, str(path), signature=signature, input_example=features.head(2))
    return path


def save_nullable_integer_model(path: Path) -> Path:
    """Classifier whose 'age' column is a long with required false, so its values may be null."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    ages = rng.integers(18, 90, size=200).astype("float64")
    ages[::7] = np.nan
    frame = pd.DataFrame({"age": pd.array(ages, dtype="Int64"), "income": rng.normal(50.0, 10.0, size=200)})
    target = (frame["income"] > 50.0).astype("int64")
    model = HistGradientBoostingClassifier(max_iter=20).fit(frame.astype({"age": "float64"}), target)

    signature = ModelSignature(
        inputs=Schema([ColSpec("long", "age", required=False), ColSpec("double", "income")]),
        outputs=Schema([ColSpec("long", "label")]),
    )
    # HistGradientBoosting's tree nodes are outside skops' default trusted types.
    trusted = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    mlflow.sklearn.save_model(model, str(path), signature=signature, skops_trusted_types=trusted)
    return path


class AgeEcho(mlflow.pyfunc.PythonModel):
    """Return age + 1, with -1 for a missing age, and the row count as a second column."""

    def predict(self, context, model_input, params=None):
        ages = model_input["age"].astype("Float64").fillna(-2.0) + 1
        return pd.DataFrame({"next_age": ages.astype("float64"), "rows": len(model_input)})


def save_pyfunc_model(path: Path) -> Path:
    signature = ModelSignature(
        inputs=Schema([ColSpec("long", "age", required=False), ColSpec("string", "city")]),
    )
    mlflow.pyfunc.save_model(str(path), python_model=AgeEcho(), signature=signature)
    return path


class SlowModel(mlflow.pyfunc.PythonModel):
    """Sleep for 'seconds' of the first row, then return it, to keep requests in flight."""

    def predict(self, context, model_input, params=None):
        time.sleep(float(model_input["seconds"].iloc[0]))
        return model_input["seconds"].to_numpy()


def save_slow_model(path: Path) -> Path:
    signature = ModelSignature(inputs=Schema([ColSpec("double", "seconds")]))
    mlflow.pyfunc.save_model(str(path), python_model=SlowModel(), signature=signature)
    return path


def save_broken_model(source: Path, path: Path) -> Path:
    """Copy a saved sklearn model and cut its model file in half."""
    shutil.copytree(source, path)
    model_file = path / "model.skops"
    content = model_file.read_bytes()
    model_file.write_bytes(content[: len(content) // 2])
    return path
