"""The local runtime: each model server is a child process on 127.0.0.1.

The runtime binds the listening socket itself and hands it to the server, so
no other process can take the port between choosing and binding it. Each
server gets a folder under PORTAL_SERVER_DIR with its PID file and log, which
lets any worker on this machine find, check and stop it later.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from deployments.runtimes.base import Health, LogFn, Runtime, RuntimeFailure, ServerHandle, ServerSpec

logger = logging.getLogger("deployments.runtimes.local")

HEALTH_TIMEOUT_SECONDS = 2.0


class LocalRuntime(Runtime):
    name = "local"

    def __init__(
        self,
        server_dir: Path,
        code_dir: Path,
        python: str = sys.executable,
        bind_host: str = "127.0.0.1",
        advertise_host: str | None = None,
    ):
        self.server_dir = Path(server_dir)
        # The folder that contains the model_server package; servers run in
        # their own folder, so it goes on their PYTHONPATH.
        self.code_dir = Path(code_dir)
        self.python = python
        self.bind_host = bind_host
        self.advertise_host = advertise_host or bind_host

    def prepare(self, spec: ServerSpec, log: LogFn) -> dict:
        if not (spec.model_dir / "MLmodel").exists():
            raise RuntimeFailure(f"The model folder {spec.model_dir} has no MLmodel file.")
        log(f"Model files ready in {spec.model_dir}")
        return {"model_dir": str(spec.model_dir)}

    def start(self, spec: ServerSpec, prepared: dict) -> ServerHandle:
        folder = self.server_dir / str(spec.server_id)
        folder.mkdir(parents=True, exist_ok=True)

        adopted = self._adopt(spec.server_id)
        if adopted is not None:
            logger.info("Server %s already runs as PID %s; adopting it", spec.server_id, adopted.ref["pid"])
            return adopted

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.bind_host, 0))
        listener.listen(1024)
        port = listener.getsockname()[1]

        command = [
            self.python, "-m", "model_server",
            "--model-dir", prepared["model_dir"],
            "--name", spec.model_name,
            "--version", str(spec.version),
            "--fd", str(listener.fileno()),
            "--workers", str(spec.workers),
            "--max-batch-size", str(spec.max_batch_size),
        ]
        log_path = folder / "server.log"
        python_path = os.pathsep.join(filter(None, [str(self.code_dir), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **spec.env, "PYTHONPATH": python_path, "MLOPS_PORTAL_SERVER_ID": str(spec.server_id)}
        try:
            with open(log_path, "ab") as log_file:
                process = subprocess.Popen(
                    command,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    pass_fds=(listener.fileno(),),
                    start_new_session=True,
                    env=env,
                    cwd=folder,
                )
        finally:
            listener.close()

        handle = ServerHandle(
            runtime=self.name,
            server_id=spec.server_id,
            url=f"http://{self.advertise_host}:{port}",
            ref={"pid": process.pid, "port": port, "log": str(log_path)},
        )
        (folder / "server.json").write_text(json.dumps({"url": handle.url, **handle.ref}))
        logger.info("Started server %s for %s v%s as PID %s on %s", spec.server_id, spec.model, spec.version, process.pid, handle.url)
        return handle

    def _adopt(self, server_id: int) -> ServerHandle | None:
        state_file = self.server_dir / str(server_id) / "server.json"
        if not state_file.exists():
            return None

        state = json.loads(state_file.read_text())
        if not _is_alive(state["pid"]) or not _is_model_server(state["pid"], server_id):
            return None
        return ServerHandle(runtime=self.name, server_id=server_id, url=state["url"], ref={k: state[k] for k in ("pid", "port", "log")})

    def health(self, handle: ServerHandle) -> Health:
        pid = handle.ref["pid"]
        if not _is_alive(pid):
            return Health(alive=False, ready=False, detail=self._exit_reason(handle))

        try:
            with urllib.request.urlopen(f"{handle.url}/v2/health/ready", timeout=HEALTH_TIMEOUT_SECONDS) as response:
                ready = response.status == 200
        except (urllib.error.URLError, OSError) as exc:
            return Health(alive=True, ready=False, detail=f"not answering yet: {exc}")
        return Health(alive=True, ready=ready, detail="" if ready else "model not loaded yet")

    def _exit_reason(self, handle: ServerHandle) -> str:
        lines = [line for line in self.logs(handle, tail=20).splitlines() if line.strip()]
        return f"The server process exited: {lines[-1]}" if lines else "The server process exited."

    def stop(self, handle: ServerHandle, grace_seconds: float = 10.0) -> None:
        pid = handle.ref["pid"]
        if not _is_alive(pid) or not _is_model_server(pid, handle.server_id):
            return

        logger.info("Stopping server %s (PID %s)", handle.server_id, pid)
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                logger.info("Server %s (PID %s) stopped", handle.server_id, pid)
                return
            time.sleep(0.1)

        logger.warning("Server %s (PID %s) did not stop in %.0f s; killing it", handle.server_id, pid, grace_seconds)
        _signal_group(pid, signal.SIGKILL)

    def logs(self, handle: ServerHandle, tail: int = 200) -> str:
        path = Path(handle.ref["log"])
        if not path.exists():
            return ""
        with open(path, "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            size = log_file.tell()
            log_file.seek(max(0, size - 64 * 1024))
            lines = log_file.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-tail:])

    def list_servers(self, include_stopped: bool = False) -> list[ServerHandle]:
        # A stopped process leaves nothing to list, so include_stopped changes nothing here.
        if not self.server_dir.exists():
            return []
        handles = []
        for folder in self.server_dir.iterdir():
            if folder.name.isdigit():
                handle = self._adopt(int(folder.name))
                if handle is not None:
                    handles.append(handle)
        return handles


def _is_alive(pid: int) -> bool:
    """Return whether the process exists and is not a zombie; reap it if it is our child."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass

    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            state = stat_file.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_model_server(pid: int, server_id: int) -> bool:
    """Check the process environment so a reused PID is never mistaken for our server."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return f"MLOPS_PORTAL_SERVER_ID={server_id}".encode() in environ.read().split(b"\0")
    except OSError:
        return False


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
