"""Serve one MLflow model over HTTP with MLflow scoring and Open Inference Protocol v2 routes.

Run it with ``python -m model_server --model-dir DIR --name NAME``. The package
imports nothing from Django, so it starts fast and runs in its own container.
"""
