"""Serve one MLflow model over HTTP with the standard library only."""

import argparse
import http.server
import json
import logging
import signal
import sys
import threading

import mlflow.pyfunc
import pandas as pd

logger = logging.getLogger("model_server")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m model_server")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", default="")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=64)
    return parser.parse_args(argv)


def make_handler(model):
    class Handler(http.server.BaseHTTPRequestHandler):
        def send_json(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in ("/ping", "/health", "/v2/health/live", "/v2/health/ready"):
                self.send_json(200, {})
            else:
                self.send_json(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            if self.path != "/invocations":
                self.send_json(404, {"error": f"no route {self.path}"})
                return

            length = int(self.headers.get("Content-Length", "0"))
            try:
                split = json.loads(self.rfile.read(length))["dataframe_split"]
                frame = pd.DataFrame(split["data"], columns=split["columns"])
                predictions = model.predict(frame)
            except Exception as error:  # the client sees why its request failed
                self.send_json(400, {"error": str(error)})
                return

            self.send_json(200, {"predictions": [p.item() if hasattr(p, "item") else p for p in predictions]})

        def log_message(self, format, *args):
            logger.info(format, *args)

    return Handler


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)

    model = mlflow.pyfunc.load_model(args.model_dir)
    server = http.server.ThreadingHTTPServer((args.host, args.port), make_handler(model))
    logger.info("serving %s version %s on %s:%d", args.name, args.version, args.host, args.port)

    # shutdown() blocks until serve_forever() returns, so call it from another thread.
    def stop(signum, frame):
        logger.info("received signal %d; shutting down", signum)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()
    logger.info("stopped")


main()
