"""Benchmark model_server against `mlflow models serve` and MLServer on one model.

All servers serve the same breast-cancer pipeline (StandardScaler +
LogisticRegression, logged with mlflow.sklearn and a signature inferred from the
DataFrame) and receive the same 1-row payload: MLflow's ``dataframe_split`` on
``/invocations`` and a [1, 30] FP64 tensor on ``/v2/models/{name}/infer``. wrk
drives each server at 64 connections and at 1 connection and reports throughput
and latency percentiles.

Needs ``wrk`` (Debian package) and an MLServer 1.7.1 virtualenv, for example::

    python3.11 -m venv /work/bench-venvs/mlserver
    /work/bench-venvs/mlserver/bin/pip install mlserver==1.7.1 mlserver-sklearn==1.7.1 \\
        uvloop==0.21.0 scikit-learn==1.9.1 skops==0.16.0 joblib

MLServer 1.7.1's inference worker crashes with uvloop 0.23 ("no current event
loop"), hence the uvloop pin. Its sklearn runtime reads joblib files, not skops,
so this script saves the same fitted estimator again with joblib.

Run from the repository root with the project's virtualenv::

    .venv/bin/python bench/model_server.py [--duration 10] [--skip mlserver]

The load generator runs on the same cores as the server, so compare the servers
within one run rather than across machines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "breast-cancer"
STARTUP_TIMEOUT_SECONDS = 120

WRK_SCRIPT = """
local f = io.open(os.getenv("BODY_FILE"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_model(work_dir: Path) -> tuple[Path, dict]:
    """Train and save the pipeline; return the model directory and its 1-row example."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
    model_dir = work_dir / "mlflow-model"
    mlflow.sklearn.save_model(
        pipeline,
        str(model_dir),
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(2),
    )
    return model_dir, {"columns": list(features.columns), "row": features.iloc[0].tolist()}


def prepare_mlserver_model(model_dir: Path, work_dir: Path, batching: bool, port: int) -> Path:
    """Write an MLServer repository with the estimator saved as joblib and the server settings."""
    import joblib
    import skops.io

    repository = work_dir / ("mlserver-batching" if batching else "mlserver-plain")
    model_folder = repository / MODEL_NAME
    model_folder.mkdir(parents=True, exist_ok=True)

    estimator = skops.io.load(model_dir / "model.skops", trusted=skops.io.get_untrusted_types(file=model_dir / "model.skops"))
    joblib.dump(estimator, model_folder / "model.joblib")

    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    if batching:
        # Adaptive batching: up to 64 requests or 10 ms, whichever comes first.
        model_settings |= {"max_batch_size": 64, "max_batch_time": 0.01}
    (model_folder / "model-settings.json").write_text(json.dumps(model_settings))

    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,
    }
    (repository / "settings.json").write_text(json.dumps(settings))
    return repository


class Server:
    """A server process started by this script, stopped by its process group id."""

    def __init__(self, label: str, command: list[str], url: str, ready_path: str, env: dict[str, str], log_path: Path, cwd: Path):
        self.label = label
        self.url = url
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(url + ready_path)

    def _wait_ready(self, ready_url: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}, see {self.log_path}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        print(f"  {self.label} ready after {time.monotonic() - started:.1f} s", flush=True)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.label} not ready after {STARTUP_TIMEOUT_SECONDS} s, see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Children of the group (MLServer's workers) may outlive the leader.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def check_reply(url: str, body: bytes) -> str:
    """Send the benchmark payload once and return the reply, failing on a non-200 status."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()[:200]


def run_wrk(url: str, body_file: Path, script: Path, connections: int, duration: int) -> dict:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    environment = os.environ | {"BODY_FILE": str(body_file)}

    # A short warm-up run first: connection setup, caches and lazy imports.
    subprocess.run(command[:3] + ["-d2s"] + command[4:], env=environment, capture_output=True, check=True)
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict:
    def milliseconds(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    percentiles = {
        int(match.group(1)): milliseconds(match.group(2), match.group(3))
        for match in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    }
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": percentiles.get(50),
        "p90_ms": percentiles.get(90),
        "p99_ms": percentiles.get(99),
        "requests": requests,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(value) for value in errors.groups()) if errors else 0,
    }


def machine_description() -> dict:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "wrk": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (default 10)")
    parser.add_argument("--mlserver-venv", type=Path, default=Path("/work/bench-venvs/mlserver"), help="MLServer 1.7.1 virtualenv")
    parser.add_argument("--skip", action="append", default=[], choices=["mlflow", "mlserver"], help="leave out a peer server")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results", help="folder for the JSON results")
    arguments = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    work_dir = Path(tempfile.mkdtemp(prefix="model-server-bench-"))
    print(f"Saving the model in {work_dir}", flush=True)
    model_dir, example = save_model(work_dir)

    split_body = work_dir / "dataframe_split.json"
    split_body.write_text(json.dumps({"dataframe_split": {"columns": example["columns"], "data": [example["row"]]}}))
    tensor_body = work_dir / "v2_tensor.json"
    tensor_body.write_text(json.dumps({"inputs": [{"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": example["row"]}]}))
    wrk_script = work_dir / "post.lua"
    wrk_script.write_text(WRK_SCRIPT)

    python_bin = Path(sys.executable).parent
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("MODEL_SERVER_")}

    def ours(workers: int) -> tuple[list[str], dict[str, str], Path]:
        port = free_port()
        command = [sys.executable, "-m", "model_server", "--model-dir", str(model_dir), "--name", MODEL_NAME,
                   "--version", "1", "--port", str(port), "--workers", str(workers)]
        return command, base_env | {"PYTHONPATH": str(REPO_ROOT)}, port

    configurations = []
    for workers in (2, 1):
        configurations.append((f"model_server, {workers} worker(s)", lambda workers=workers: ours(workers), [
            ("/invocations dataframe_split", "/invocations", split_body),
            ("v2 infer [1, 30] tensor", f"/v2/models/{MODEL_NAME}/infer", tensor_body),
        ]))
    if "mlflow" not in arguments.skip:
        def mlflow_serve():
            port = free_port()
            command = [str(python_bin / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                       "-h", "127.0.0.1", "-p", str(port)]
            return command, base_env | {"PATH": f"{python_bin}:{os.environ['PATH']}"}, port
        configurations.append(("mlflow models serve 3.17.2", mlflow_serve, [("/invocations dataframe_split", "/invocations", split_body)]))
    if "mlserver" not in arguments.skip:
        mlserver_bin = arguments.mlserver_venv / "bin"
        for batching in (True, False):
            def mlserver(batching=batching):
                port = free_port()
                repository = prepare_mlserver_model(model_dir, work_dir, batching, port)
                env = base_env | {"PATH": f"{mlserver_bin}:{os.environ['PATH']}"}
                return [str(mlserver_bin / "mlserver"), "start", str(repository)], env, port
            label = "MLServer 1.7.1, adaptive batching" if batching else "MLServer 1.7.1, no batching"
            configurations.append((label, mlserver, [("v2 infer [1, 30] tensor", f"/v2/models/{MODEL_NAME}/infer", tensor_body)]))

    results = []
    for label, prepare, routes in configurations:
        print(f"Starting {label}", flush=True)
        command, env, port = prepare()
        url = f"http://127.0.0.1:{port}"
        ready_path = "/v2/health/ready" if "MLServer" in label else "/ping"
        server = Server(label, command, url, ready_path, env, work_dir / f"{re.sub(r'[^a-z0-9]+', '-', label.lower())}.log", REPO_ROOT)
        try:
            for route_label, path, body_file in routes:
                print(f"  {route_label}: {check_reply(url + path, body_file.read_bytes())}", flush=True)
                for connections in (64, 1):
                    figures = run_wrk(url + path, body_file, wrk_script, connections, arguments.duration)
                    figures |= {"server": label, "payload": route_label, "connections": connections}
                    print(f"    {connections:>2} connections: {figures['requests_per_second']:8.0f} req/s  "
                          f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
                          f"non-2xx {figures['non_2xx']}  socket errors {figures['socket_errors']}", flush=True)
                    results.append(figures)
        finally:
            server.stop()

    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "duration_seconds": arguments.duration,
        "results": results,
    }
    arguments.output.mkdir(parents=True, exist_ok=True)
    output_file = arguments.output / f"model_server-{record['date'][:19].replace(':', '')}.json"
    output_file.write_text(json.dumps(record, indent=2))
    print(f"\nResults in {output_file}\n")
    print_table(results)
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def print_table(results: list[dict]) -> None:
    print("| server | payload | clients | req/s | p50 ms | p99 ms | non-2xx |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in results:
        print(f"| {row['server']} | {row['payload']} | {row['connections']} | {row['requests_per_second']:,.0f} | "
              f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_2xx']} |")


if __name__ == "__main__":
    sys.exit(main())
