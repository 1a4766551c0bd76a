"""Small MLflow models for release tests: one numeric column x, saved with the sklearn flavor.

The sklearn flavor loads without importing MLflow, so these servers are ready
in about a second. The estimators are pickled with their code (cloudpickle by
value), because the model server process cannot import this test module.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd

cloudpickle.register_pickle_by_value(sys.modules[__name__])

OK_PAYLOAD = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}
# A FlakyScaler fails on this payload, and the other models predict on it.
FAILING_PAYLOAD = {"dataframe_split": {"columns": ["x"], "data": [[-1.0]]}}
# A SlowExampleScaler takes `seconds` on its input example.
SLOW_VALUE = 42.0


class Scaler:
    """Predict x × factor."""

    def __init__(self, factor: float):
        self.factor = factor

    def predict(self, features):
        return np.asarray(features, dtype=float)[:, 0] * self.factor


class FlakyScaler(Scaler):
    """Predict x × factor, and fail (status 500 from the model server) when a row has x < 0."""

    def predict(self, features):
        values = np.asarray(features, dtype=float)[:, 0]
        if (values < 0).any():
            raise RuntimeError("negative x is not supported by this version")
        return values * self.factor


class SlowExampleScaler(Scaler):
    """Predict x × factor, taking `seconds` when a row has x = 42 (the input example, so the smoke prediction is slow)."""

    def __init__(self, factor: float, seconds: float):
        super().__init__(factor)
        self.seconds = seconds

    def predict(self, features):
        values = np.asarray(features, dtype=float)[:, 0]
        if (values == SLOW_VALUE).any():
            time.sleep(self.seconds)
        return values * self.factor


def save(estimator: Scaler, path: Path, example: float = 1.0) -> Path:
    """Save an estimator as an MLflow sklearn model with a one-column signature and input example."""
    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("double", "x")]), outputs=Schema([ColSpec("double")]))
    mlflow.sklearn.save_model(
        estimator,
        str(path),
        serialization_format="cloudpickle",
        signature=signature,
        input_example=pd.DataFrame({"x": [example]}),
    )
    return path
