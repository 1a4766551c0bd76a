"""Save a small MLflow model and a matching request body, to benchmark through a real model server.

    python bench/iris_model.py DIR

Writes DIR/model (a scikit-learn LogisticRegression on the iris data set that ships with
scikit-learn, saved with mlflow.sklearn.save_model and its signature) and DIR/body.json
(one row in the MLflow `dataframe_split` format). Then, for example:

    python -m model_server --model-dir DIR/model --name bench --port 18301
    python bench/gateway.py --backend-url http://127.0.0.1:18301 --body-file DIR/body.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow.sklearn
import orjson
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)

    data = load_iris(as_frame=True)
    features = data.data.rename(columns=lambda name: name.replace(" (cm)", "").replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(features, data.target)
    signature = infer_signature(features, model.predict(features))
    mlflow.sklearn.save_model(model, directory / "model", signature=signature, input_example=features.head(1))

    row = features.head(1)
    body = {"dataframe_split": {"columns": list(row.columns), "data": row.values.tolist()}}
    (directory / "body.json").write_bytes(orjson.dumps(body))
    print(f"wrote {directory / 'model'} and {directory / 'body.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
