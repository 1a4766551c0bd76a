"""Process management: load the model, listen, fork workers, stop gracefully.

The parent loads the model once before it listens, so a model that fails to load
stops the server with exit status 3 before any client can connect. With
``--workers N`` above 1 the parent forks N workers after loading, which share the
loaded model's memory copy-on-write and accept connections from the same
listening socket. SIGTERM or SIGINT makes every worker stop accepting, finish the
requests in flight and exit with status 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import Iterator

import uvicorn

from model_server.app import ModelServerApp
from model_server.loading import ModelLoadError, load_model
from model_server.settings import Settings

logger = logging.getLogger("model_server")

EXIT_OK = 0
EXIT_SETUP_ERROR = 1
EXIT_USAGE = 2
EXIT_LOAD_FAILED = 3

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_LISTEN_BACKLOG = 2048
# A worker that dies this soon after its start is not restarted, to avoid a crash loop.
_MIN_WORKER_LIFETIME_SECONDS = 5.0


class _GracefulServer(uvicorn.Server):
    """uvicorn server that exits normally after a stop signal.

    uvicorn 0.55 re-raises the captured signal once it has shut down, which ends
    the process with SIGTERM's default action instead of status 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )


def run(settings: Settings) -> int:
    """Serve until stopped and return the process exit status."""
    configure_logging(settings.log_level)
    logger.info("Loading model %s from %s", settings.name, settings.model_dir)

    try:
        model = load_model(settings.model_dir)
    except ModelLoadError as error:
        return _report_load_failure(settings, str(error))
    except Exception as error:  # Any failure while loading has the same outcome: exit 3 with the reason.
        logger.exception("Unexpected error while loading %s", settings.model_dir)
        return _report_load_failure(settings, f"{type(error).__name__}: {error}")

    try:
        listener = _open_listener(settings)
    except OSError as error:
        where = f"--fd {settings.fd}" if settings.fd is not None else f"{settings.host}:{settings.port}"
        print(f"model_server: cannot listen on {where}: {error}", file=sys.stderr)
        return EXIT_USAGE if settings.fd is not None else EXIT_SETUP_ERROR

    host, port = listener.getsockname()[:2]
    app = ModelServerApp(model, settings.name, settings.version, settings.max_batch_size)
    logger.info(
        "Serving model %s version %s on http://%s:%d with %d worker(s), max batch size %d",
        settings.name,
        settings.version or "(none)",
        host,
        port,
        settings.workers,
        settings.max_batch_size,
    )

    if settings.workers == 1:
        _serve(app, listener, settings)
        logger.info("Stopped model server for %s", settings.name)
        return EXIT_OK
    return _supervise_workers(app, listener, settings)


def _report_load_failure(settings: Settings, reason: str) -> int:
    """Print the load failure as the last stderr line, as the runtime reads it from there."""
    one_line = " ".join(reason.split())
    sys.stderr.flush()
    print(f"model_server: failed to load model from {settings.model_dir}: {one_line}", file=sys.stderr, flush=True)
    return EXIT_LOAD_FAILED


def _open_listener(settings: Settings) -> socket.socket:
    """Bind the TCP port, or adopt the inherited socket given by ``--fd``."""
    if settings.fd is not None:
        listener = socket.socket(fileno=settings.fd)
        if listener.type != socket.SOCK_STREAM or not listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise OSError(f"file descriptor {settings.fd} is not a listening TCP socket")
        return listener

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings.host, settings.port))
    listener.listen(_LISTEN_BACKLOG)
    return listener


def _serve(app: ModelServerApp, listener: socket.socket, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_config=None,
        log_level=settings.log_level.lower(),
        backlog=_LISTEN_BACKLOG,
    )
    server = _GracefulServer(config)
    try:
        server.run(sockets=[listener])
    finally:
        app.close()


def _supervise_workers(app: ModelServerApp, listener: socket.socket, settings: Settings) -> int:
    """Fork the workers, restart one that dies, and pass stop signals on to all of them."""
    workers: dict[int, float] = {}
    stopping = False

    def stop(sig: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            logger.info("Received %s, stopping %d worker(s)", signal.Signals(sig).name, len(workers))
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for sig in _STOP_SIGNALS:
        signal.signal(sig, stop)

    for _ in range(settings.workers):
        _fork_worker(app, listener, settings, workers)

    exit_status = EXIT_OK
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = workers.pop(pid, None)
        if started is None:
            continue

        code = os.waitstatus_to_exitcode(status)
        if stopping:
            logger.info("Worker %d exited with status %d", pid, code)
            continue

        logger.error("Worker %d exited unexpectedly with status %d", pid, code)
        if time.monotonic() - started < _MIN_WORKER_LIFETIME_SECONDS:
            logger.error("Worker %d died within %.0f s of its start; stopping the server", pid, _MIN_WORKER_LIFETIME_SECONDS)
            stop(signal.SIGTERM, None)
            exit_status = EXIT_SETUP_ERROR
            continue
        _fork_worker(app, listener, settings, workers)

    logger.info("Stopped model server for %s", settings.name)
    return exit_status


def _fork_worker(app: ModelServerApp, listener: socket.socket, settings: Settings, workers: dict[int, float]) -> None:
    pid = os.fork()
    if pid == 0:
        # The parent's handlers would signal the siblings; uvicorn installs its own in _serve.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        status = EXIT_OK
        try:
            _serve(app, listener, settings)
        except BaseException:
            logger.exception("Worker %d failed", os.getpid())
            status = EXIT_SETUP_ERROR
        finally:
            logging.shutdown()
            os._exit(status)

    workers[pid] = time.monotonic()
    logger.info("Started worker %d", pid)
