"""Command line: `python -m gateway --help`.

Validates the options, then runs uvicorn with uvloop and its httptools protocol, in a
subclass that sends each response in one write (gateway/http_protocol.py). With
--workers above 1, uvicorn's supervisor spawns the workers, and this process creates the
temporary directory that prometheus_client's multiprocess mode shares between them.
"""

from __future__ import annotations

import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

import orjson
import uvicorn

from gateway.http_protocol import CoalescingHttpToolsProtocol
from gateway.logs import log, logging_config
from gateway.routes import RouteTableError, parse_route_table
from gateway.settings import Settings, SettingsError, build_parser, parse_settings

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]

    try:
        settings = parse_settings(argv)
        _check_routes_file(settings)
    except SettingsError as error:
        build_parser().print_usage(sys.stderr)
        print(f"python -m gateway: error: {error}", file=sys.stderr)
        return EXIT_USAGE

    # Workers are spawned, not forked, and read their settings from the environment.
    os.environ.update(settings.to_environ())

    metrics_dir = None
    if settings.workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    # uvicorn applies this configuration in every worker, so do it here for the parent too.
    logging.config.dictConfig(logging_config(settings.log_level))
    log.info(
        "gateway starting on %s:%d with %d worker(s), routes from %s, poll interval %g s",
        settings.host, settings.port, settings.workers, settings.describe_source(), settings.poll_interval,
    )

    try:
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            http=CoalescingHttpToolsProtocol,
            lifespan="on",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            log_config=logging_config(settings.log_level),
            timeout_graceful_shutdown=int(settings.backend_timeout) + 1,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("gateway stopped")

    return 0


def _check_routes_file(settings: Settings) -> None:
    """Reject a routes file that does not parse, so a typo fails at start instead of at first request."""
    if settings.routes_file is None:
        return
    try:
        parse_route_table(orjson.loads(settings.routes_file.read_bytes()))
    except orjson.JSONDecodeError as error:
        raise SettingsError(f"--routes-file (GATEWAY_ROUTES_FILE): invalid JSON in {settings.routes_file}: {error}")
    except RouteTableError as error:
        raise SettingsError(f"--routes-file (GATEWAY_ROUTES_FILE): invalid route table in {settings.routes_file}: {error}")


if __name__ == "__main__":
    sys.exit(main())
