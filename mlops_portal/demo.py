"""The demo model: a scikit-learn pipeline on the breast-cancer data set that scikit-learn ships.

The demo command and the tests both train it, so they exercise the same model.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger("mlops_portal.demo")

DEMO_MODEL = "breast-cancer-classifier"


def train_breast_cancer(max_iter: int = 1000, regularization: float = 1.0):
    """Return (fitted pipeline, features DataFrame, accuracy on a held-out split)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    train_x, test_x, train_y, test_y = train_test_split(features, target, test_size=0.25, random_state=7)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=regularization))
    pipeline.fit(train_x, train_y)
    return pipeline, features, float(pipeline.score(test_x, test_y))


def save_model(path: Path, regularization: float = 1.0) -> Path:
    """Save the demo model as an MLflow model folder, with signature and input example."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    pipeline, features, _ = train_breast_cancer(regularization=regularization)
    signature = infer_signature(features, pipeline.predict(features))
    mlflow.sklearn.save_model(pipeline, str(path), signature=signature, input_example=features.head(2))
    return path


def log_and_register(tracking_uri: str, artifact_location: str, regularization: float = 1.0, alias: str = "champion") -> str:
    """Train, log and register the demo model in an MLflow store; return the new version number."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name("breast-cancer")
    if experiment is None:
        mlflow.create_experiment("breast-cancer", artifact_location=artifact_location)
    mlflow.set_experiment("breast-cancer")

    pipeline, features, accuracy = train_breast_cancer(regularization=regularization)
    with mlflow.start_run(run_name="logistic-regression"):
        mlflow.log_params({"model": "LogisticRegression", "C": regularization, "scaler": "StandardScaler"})
        mlflow.log_metric("accuracy", accuracy)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(features, pipeline.predict(features)),
            input_example=features.head(2),
            registered_model_name=DEMO_MODEL,
        )

    version = str(info.registered_model_version)
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(DEMO_MODEL, alias, version)
    logger.info("Registered %s version %s in MLflow (accuracy %.3f)", DEMO_MODEL, version, accuracy)
    return version


def has_alias(tracking_uri: str, alias: str) -> bool:
    """Return whether the MLflow store already has the demo model with `alias`."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(DEMO_MODEL, alias)
    except MlflowException:
        return False
    return True
