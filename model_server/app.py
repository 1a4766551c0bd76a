"""The ASGI application: routing, request bodies, predictions and error responses.

A plain ASGI callable with no framework, because routing and body handling are a
visible share of a sub-millisecond request. Routes follow the MLflow scoring server
(``/ping``, ``/health``, ``/invocations``, ``/metadata``) and the Open Inference
Protocol v2 (``/v2/...``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from model_server import payloads
from model_server.batching import Batcher
from model_server.loading import LoadedModel
from model_server.payloads import RequestError
from model_server.signature import COLUMN_V2_DATATYPES, ColumnSpec, TensorSpec

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Bodies above this size get 413 before they are read into memory.
MAX_BODY_BYTES = 64 * 1024 * 1024

_JSON_HEADERS = [(b"content-type", b"application/json")]

# Error bodies follow each protocol: MLflow clients read error_code and message,
# v2 clients read error.
_MLFLOW_ERROR_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 415: "BAD_REQUEST"}


class ClientErrorLog:
    """Log rejected requests at most once per interval, with the count of those left out."""

    def __init__(self, interval_seconds: float = 1.0) -> None:
        self._interval = interval_seconds
        self._last_logged = 0.0
        self._suppressed = 0

    def record(self, status: int, path: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_logged < self._interval:
            self._suppressed += 1
            return
        logger.info(
            "Rejected %s with %d: %s (%d more rejections not logged since the last line)",
            path,
            status,
            message,
            self._suppressed,
        )
        self._last_logged = now
        self._suppressed = 0


class ModelServerApp:
    """ASGI application serving one loaded model under ``name``."""

    def __init__(self, model: LoadedModel, name: str, version: str | None, max_batch_size: int) -> None:
        self.model = model
        self.name = name
        self.version = version
        self.max_batch_size = max_batch_size
        self._batcher: Batcher | None = None
        self._client_errors = ClientErrorLog()

        self._model_prefix = f"/v2/models/{name}"
        self._versioned_prefix = f"/v2/models/{name}/versions/{version}" if version else None
        self._output_name = _default_output_name(model)
        self._get_routes: dict[str, Callable[[], tuple[int, Any]]] = {
            "/ping": self._ping,
            "/health": self._ping,
            "/v2/health/live": lambda: (200, {"live": True}),
            "/v2/health/ready": lambda: (200, {"ready": True}),
            "/metadata": self._mlflow_metadata,
        }
        self._static_bodies = {
            "v2_metadata": payloads.dumps(self._v2_metadata()),
            "v2_ready": payloads.dumps({"name": name, "ready": True}),
        }

    @property
    def batcher(self) -> Batcher:
        # Created on first use, inside the worker process and its event loop.
        if self._batcher is None:
            self._batcher = Batcher(
                self.model.predict,
                max_batch_rows=self.max_batch_size,
                rows_are_independent=self.model.rows_are_independent,
                inline=self.model.runs_inline,
            )
        return self._batcher

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _run_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        method = scope["method"]
        path = scope["path"]

        try:
            await self._dispatch(method, path, scope, receive, send)
        except RequestError as error:
            self._client_errors.record(error.status, path, error.message)
            await _send_json(send, error.status, _error_body(path, error.status, error.message))

    async def _dispatch(self, method: str, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        if path == "/invocations":
            _require_method(method, "POST")
            await self._invocations(scope, receive, send)
            return

        route = self._get_routes.get(path)
        if route is not None:
            _require_method(method, "GET")
            status, body = route()
            await _send_json(send, status, payloads.dumps(body))
            return

        if path.startswith("/v2/models/"):
            await self._v2_model_route(method, path, scope, receive, send)
            return

        raise RequestError(404, f"no route for {path}")

    async def _v2_model_route(self, method: str, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        versioned = self._versioned_prefix
        if versioned and (path == versioned or path.startswith(versioned + "/")):
            rest = path[len(versioned) :]
        elif path.startswith(self._model_prefix + "/") or path == self._model_prefix:
            rest = path[len(self._model_prefix) :]
            if rest.startswith("/versions/"):
                raise RequestError(404, f"model '{self.name}' has no version '{rest.split('/')[2]}'")
        else:
            requested = path[len("/v2/models/") :].split("/", 1)[0]
            raise RequestError(404, f"model '{requested}' not found, this server serves '{self.name}'")

        if rest == "/infer":
            _require_method(method, "POST")
            await self._v2_infer(scope, receive, send)
        elif rest == "":
            _require_method(method, "GET")
            await _send_json(send, 200, self._static_bodies["v2_metadata"])
        elif rest == "/ready":
            _require_method(method, "GET")
            await _send_json(send, 200, self._static_bodies["v2_ready"])
        else:
            raise RequestError(404, f"no route for {path}")

    # --- health and metadata ---

    def _ping(self) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    def _mlflow_metadata(self) -> tuple[int, Any]:
        signature = self.model.signature
        return 200, {
            "name": self.name,
            "version": self.version,
            "flavor": self.model.flavor,
            "predict_function": self.model.predict_function,
            "input_form": self.model.details.get("input_form"),
            "mlflow_version": self.model.mlmodel.get("mlflow_version"),
            "signature": signature.to_dict() if signature is not None else None,
            "input_example": self.model.input_example,
        }

    def _v2_metadata(self) -> dict[str, Any]:
        signature = self.model.signature
        inputs: list[dict[str, Any]] = []
        outputs: list[dict[str, Any]] = []
        if signature is not None:
            inputs = [_v2_tensor_metadata(spec) for spec in signature.inputs]
            outputs = [_v2_tensor_metadata(spec, self._output_name) for spec in signature.outputs or []]
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": f"mlflow-{self.model.flavor}",
            "inputs": inputs,
            "outputs": outputs,
        }

    # --- predictions ---

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        media_type = _media_type(scope)
        if media_type not in ("application/json", "text/csv"):
            shown = media_type or "none"
            raise RequestError(415, f"unsupported content type '{shown}', expected application/json or text/csv")

        body = await _read_body(scope, receive)
        signature = self.model.signature
        if media_type == "text/csv":
            model_input, params = payloads.parse_mlflow_csv(body, signature), None
        else:
            model_input, params = payloads.parse_mlflow_json(body, signature)

        output = await self._predict(model_input, params, "/invocations", None)
        response = {"predictions": payloads.to_mlflow_predictions(output)}
        await _send_json(send, 200, payloads.dumps(response))

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        media_type = _media_type(scope)
        if media_type not in (None, "application/json"):
            raise RequestError(415, f"unsupported content type '{media_type}', expected application/json")

        body = await _read_body(scope, receive)
        model_input, parameters, request_id = payloads.parse_v2_request(body, self.model.signature)
        output = await self._predict(model_input, parameters, "infer", request_id)

        response: dict[str, Any] = {"model_name": self.name}
        if self.version:
            response["model_version"] = self.version
        if request_id is not None:
            response["id"] = request_id
        response["outputs"] = payloads.to_v2_outputs(output, self._output_name)
        await _send_json(send, 200, payloads.dumps(response))

    async def _predict(self, model_input: Any, params: dict[str, Any] | None, route: str, request_id: Any) -> Any:
        """Predict, turning the model's input errors into 400 and its other errors into 500."""
        try:
            return await self.batcher.predict(model_input, params)
        except (ValueError, TypeError, KeyError) as error:
            raise RequestError(400, f"the model rejected the input: {_first_line(error)}") from error
        except Exception as error:  # The model may raise anything; the client gets no traceback.
            status = _mlflow_exception_status(error)
            if status is not None and 400 <= status < 500:
                raise RequestError(400, f"the model rejected the input: {_first_line(error)}") from error
            logger.exception("Prediction failed on %s (model %s, request id %s)", route, self.name, request_id)
            raise RequestError(500, f"prediction failed: {type(error).__name__}, see the server log") from error


def _default_output_name(model: LoadedModel) -> str:
    """Name the single output tensor after the signature's output column, else the predict function."""
    signature = model.signature
    if signature is not None and signature.outputs and len(signature.outputs) == 1 and signature.outputs[0].name:
        return signature.outputs[0].name
    return model.predict_function.rsplit(".", 1)[-1]


def _v2_tensor_metadata(spec: ColumnSpec | TensorSpec, default_name: str = "input") -> dict[str, Any]:
    if isinstance(spec, ColumnSpec):
        return {"name": spec.name or default_name, "datatype": COLUMN_V2_DATATYPES[spec.type], "shape": [-1]}

    import numpy as np

    datatype = payloads.v2_datatype(np.empty(0, dtype=spec.dtype))
    return {"name": spec.name or default_name, "datatype": datatype, "shape": list(spec.shape)}


def _mlflow_exception_status(error: Exception) -> int | None:
    get_status = getattr(error, "get_http_status_code", None)
    if get_status is None:
        return None
    try:
        return int(get_status())
    except (TypeError, ValueError):
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]


def _error_body(path: str, status: int, message: str) -> bytes:
    if path.startswith("/v2/"):
        return payloads.dumps({"error": message})
    error_code = "INTERNAL_ERROR" if status >= 500 else _MLFLOW_ERROR_CODES.get(status, "BAD_REQUEST")
    return payloads.dumps({"error_code": error_code, "message": message})


def _require_method(method: str, expected: str) -> None:
    if method != expected:
        raise RequestError(405, f"method {method} not allowed, use {expected}")


def _media_type(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise RequestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")

    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body

    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = _JSON_HEADERS + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _run_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan events; the model is loaded before the server starts."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
