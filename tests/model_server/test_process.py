"""Process behaviour: settings errors, load failures and graceful stop."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO_ROOT, ServerProcess, _server_environment, _wait_until_ready, start_server


def run_module(*args, env_extra=None, timeout=120):
    environment = _server_environment() | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "model_server", *args], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- settings ---

@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--name", "m", "--model-dir", "x", "--port", "http"], {}, "--port"),
        (["--name", "m", "--model-dir", "x", "--workers", "0"], {}, "--workers"),
        (["--name", "m", "--model-dir", "x", "--max-batch-size", "-3"], {}, "--max-batch-size"),
        (["--name", "m", "--model-dir", "x", "--host", "example.org"], {}, "--host"),
        (["--name", "m", "--model-dir", "x", "--port", "1", "--fd", "3"], {}, "--fd"),
        (["--model-dir", "x"], {}, "--name"),
        (["--name", "m"], {}, "--model-dir"),
        (["--name", "m", "--model-dir", "x"], {"MODEL_SERVER_WORKERS": "two"}, "MODEL_SERVER_WORKERS"),
        (["--name", "m", "--model-dir", "x"], {"MODEL_SERVER_PORT": "70000"}, "MODEL_SERVER_PORT"),
    ],
)
def test_bad_setting_exits_2_naming_option(args, env, named):
    result = run_module(*args, env_extra=env)
    assert (result.returncode, named in result.stderr) == (2, True)


def test_fd_that_is_not_a_socket_exits_2(breast_cancer_model):
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "model_server", "--model-dir", str(breast_cancer_model), "--name", "m", "--fd", str(read_end)],
            cwd=REPO_ROOT, env=_server_environment(), capture_output=True, text=True, timeout=120, pass_fds=[read_end],
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 2


def test_environment_settings_start_server(breast_cancer_model, tmp_path):
    port = free_port()
    environment = _server_environment() | {
        "MODEL_SERVER_MODEL_DIR": str(breast_cancer_model),
        "MODEL_SERVER_NAME": "from-env",
        "MODEL_SERVER_PORT": str(port),
    }
    log_path = tmp_path / "env.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "model_server"], cwd=REPO_ROOT, env=environment,
                                   stdout=log_file, stderr=subprocess.STDOUT)
    server = ServerProcess(process, port, log_path)
    try:
        _wait_until_ready(server)
        status = server.get("/v2/models/from-env/ready").status
    finally:
        server.stop()
    assert status == 200


# --- load failures ---

def test_truncated_model_file_exits_3(broken_model):
    assert run_module("--model-dir", str(broken_model), "--name", "m", "--port", "0").returncode == 3


def test_truncated_model_file_last_stderr_line_names_directory(broken_model):
    result = run_module("--model-dir", str(broken_model), "--name", "m", "--port", "0")
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"model_server: failed to load model from {broken_model}: ")


def test_missing_directory_exits_3(tmp_path):
    assert run_module("--model-dir", str(tmp_path / "absent"), "--name", "m", "--port", "0").returncode == 3


def test_directory_without_mlmodel_names_reason(tmp_path):
    result = run_module("--model-dir", str(tmp_path), "--name", "m", "--port", "0")
    assert result.stderr.strip().splitlines()[-1] == (
        f"model_server: failed to load model from {tmp_path}: no MLmodel file in {tmp_path}, expected an MLflow model directory"
    )


def test_untrusted_skops_type_exits_3(nullable_model, tmp_path):
    """Without skops_trusted_types in MLmodel, HistGradientBoosting's tree type must not load."""
    copy = tmp_path / "untrusted"
    subprocess.run(["cp", "-r", str(nullable_model), str(copy)], check=True)
    mlmodel = (copy / "MLmodel").read_text()
    start = mlmodel.index("skops_trusted_types:")
    end = mlmodel.index("\n", mlmodel.index("TreePredictor", start))
    (copy / "MLmodel").write_text(mlmodel[:start] + "skops_trusted_types: null" + mlmodel[end:])
    result = run_module("--model-dir", str(copy), "--name", "m", "--port", "0")
    assert (result.returncode, "TreePredictor" in result.stderr.splitlines()[-1]) == (3, True)


# --- graceful stop ---

def post_slow(server, seconds, replies):
    replies.append(server.post("/invocations", {"inputs": {"seconds": [seconds]}}, "application/json").status)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_lets_requests_in_flight_finish(slow_model, tmp_path, stop_signal):
    server = start_server(slow_model, "slow", tmp_path / "slow.log")
    replies = []
    clients = [threading.Thread(target=post_slow, args=(server, 0.5, replies)) for _ in range(3)]
    for client in clients:
        client.start()
    time.sleep(0.3)

    server.process.send_signal(stop_signal)
    for client in clients:
        client.join(timeout=30)
    assert replies == [200, 200, 200]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0(slow_model, tmp_path, stop_signal):
    server = start_server(slow_model, "slow", tmp_path / "slow.log")
    client = threading.Thread(target=post_slow, args=(server, 0.5, []))
    client.start()
    time.sleep(0.3)

    server.process.send_signal(stop_signal)
    client.join(timeout=30)
    assert server.process.wait(timeout=30) == 0


def test_sigterm_with_two_workers_exits_0(breast_cancer_model, tmp_path):
    server = start_server(breast_cancer_model, "breast-cancer", tmp_path / "workers.log", "--workers", "2")
    assert server.stop() == 0


def test_two_workers_serve_predictions(breast_cancer_model, breast_cancer_example, tmp_path):
    server = start_server(breast_cancer_model, "breast-cancer", tmp_path / "workers.log", "--workers", "2")
    try:
        body = {"dataframe_split": {"columns": breast_cancer_example["columns"], "data": [breast_cancer_example["row"]]}}
        statuses = {server.post("/invocations", body).status for _ in range(20)}
    finally:
        server.stop()
    assert statuses == {200}
