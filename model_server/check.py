"""``python -m model_server check --model-dir DIR``: load a model and predict on its input example.

The portal runs this in a child process after registering a version, so a
model that cannot load or cannot predict on its own example is marked failed
before anyone deploys it. Exit status 0 means both steps worked; otherwise the
last line on stderr says what failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_server.loading import ModelLoadError, load_model
from model_server.payloads import RequestError, parse_mlflow_json

EXIT_OK = 0
EXIT_LOAD_FAILED = 3
EXIT_PREDICT_FAILED = 4


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_server check", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path, help="MLflow model folder (contains MLmodel).")
    options = parser.parse_args(argv)

    try:
        model = load_model(options.model_dir)
    except ModelLoadError as error:
        print(f"model_server: failed to load model from {options.model_dir}: {error}", file=sys.stderr)
        return EXIT_LOAD_FAILED

    example = _serving_example(options.model_dir, model.mlmodel)
    if example is None:
        print("model_server: model loaded; it has no serving input example, so no prediction was tried")
        return EXIT_OK

    try:
        model_input, params = parse_mlflow_json(example, model.signature)
        model.predict(model_input, params)
    except RequestError as error:
        print(f"model_server: the model's input example does not match its signature: {error}", file=sys.stderr)
        return EXIT_PREDICT_FAILED
    except Exception as error:  # noqa: BLE001 - any failure of the user's model is reported, not raised
        print(f"model_server: the model loaded but failed to predict on its input example: {error!r}", file=sys.stderr)
        return EXIT_PREDICT_FAILED

    print("model_server: model loaded and predicted on its input example")
    return EXIT_OK


def _serving_example(model_dir: Path, mlmodel: dict) -> bytes | None:
    info = mlmodel.get("saved_input_example_info") or {}
    relative = info.get("serving_input_path")
    if not relative or not (model_dir / relative).is_file():
        return None
    return (model_dir / relative).read_bytes()
