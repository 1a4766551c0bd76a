"""A fast stand-in model server for benchmarks: `python bench/backend.py --port PORT`.

It reads the request body and returns a fixed MLflow-style prediction, so a benchmark
measures the proxy in front of it rather than a model. It returns the same response to
every method and path, POST /invocations included. It runs on uvicorn with httptools
and uvloop and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

PREDICTION = b'{"predictions": [0]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(PREDICTION)).encode())]


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return

    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)

    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": PREDICTION})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    options = parser.parse_args()

    uvicorn.run(
        "backend:app" if options.workers > 1 else app,
        host="127.0.0.1", port=options.port, workers=options.workers,
        loop="uvloop", http="httptools", lifespan="off", access_log=False, log_level="warning",
    )


if __name__ == "__main__":
    main()
