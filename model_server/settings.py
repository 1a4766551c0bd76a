"""Command-line options and ``MODEL_SERVER_*`` environment variables.

Each option can come from the command line or from an environment variable
(``--model-dir`` or ``MODEL_SERVER_MODEL_DIR``, and so on), so that a container can
be configured without a command. The command line wins. This module imports
nothing heavy, so that the thread settings in ``__main__`` apply before numpy
loads.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

ENV_PREFIX = "MODEL_SERVER_"
DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH_SIZE = 64


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    name: str
    version: str | None
    host: str
    port: int | None
    fd: int | None
    workers: int
    max_batch_size: int
    log_level: str


def _positive_integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return value


def _file_descriptor(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected the number of an open listening socket, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected the number of an open listening socket, got {text!r}")
    return value


def _host(text: str) -> str:
    if text == "localhost":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address such as 127.0.0.1, got {text!r}") from None
    return text


def _path_segment(text: str) -> str:
    if not text or "/" in text or text.strip() != text:
        raise argparse.ArgumentTypeError(f"expected a non-empty name without '/' or surrounding spaces, got {text!r}")
    return text


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise argparse.ArgumentTypeError(f"expected DEBUG, INFO, WARNING or ERROR, got {text!r}")
    return level


# option name, environment variable suffix, converter, help text
_OPTIONS: list[tuple[str, str, Callable[[str], object], str]] = [
    ("--model-dir", "MODEL_DIR", str, "MLflow model directory, the folder that contains MLmodel (required)"),
    ("--name", "NAME", _path_segment, "model name that the /v2/models/{name} routes serve (required)"),
    ("--version", "VERSION", _path_segment, "version label reported in v2 metadata and responses"),
    ("--host", "HOST", _host, "IP address to listen on (default 127.0.0.1)"),
    ("--port", "PORT", _port, f"TCP port to listen on, 0 for any free port (default {DEFAULT_PORT})"),
    ("--fd", "FD", _file_descriptor, "serve on this inherited listening socket instead of binding a port"),
    ("--workers", "WORKERS", _positive_integer, "number of worker processes (default 1, one per core is fastest)"),
    (
        "--max-batch-size",
        "MAX_BATCH_SIZE",
        _positive_integer,
        f"maximum rows per predict call when queued requests are joined, 1 disables joining (default {DEFAULT_MAX_BATCH_SIZE})",
    ),
    ("--log-level", "LOG_LEVEL", _log_level, "DEBUG, INFO, WARNING or ERROR (default INFO)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_server",
        description="Serve one MLflow model over HTTP (MLflow scoring routes and Open Inference Protocol v2).",
        epilog=f"Every option can also be set by an environment variable: {ENV_PREFIX}MODEL_DIR, "
        f"{ENV_PREFIX}NAME, {ENV_PREFIX}PORT and so on. Command-line options take precedence.",
    )
    for option, _, converter, help_text in _OPTIONS:
        parser.add_argument(option, type=converter, help=help_text, default=None)
    return parser


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the command line and the environment; exit with status 2 on a bad value."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    environ = os.environ if environ is None else environ

    values: dict[str, object] = {}
    for option, env_suffix, converter, _ in _OPTIONS:
        key = option[2:].replace("-", "_")
        value = getattr(arguments, key)
        env_name = ENV_PREFIX + env_suffix
        if value is None and environ.get(env_name, "") != "":
            try:
                value = converter(environ[env_name])
            except argparse.ArgumentTypeError as error:
                parser.error(f"environment variable {env_name}: {error}")
        values[key] = value

    # A listening address given on the command line replaces the environment's.
    if arguments.port is not None or arguments.fd is not None:
        values["port"], values["fd"] = arguments.port, arguments.fd
    if values["port"] is not None and values["fd"] is not None:
        parser.error(f"--port and --fd ({ENV_PREFIX}PORT and {ENV_PREFIX}FD) are mutually exclusive, give one")

    if values["model_dir"] is None:
        parser.error(f"--model-dir (or {ENV_PREFIX}MODEL_DIR) is required")
    if values["name"] is None:
        parser.error(f"--name (or {ENV_PREFIX}NAME) is required")

    return Settings(
        model_dir=Path(str(values["model_dir"])),
        name=str(values["name"]),
        version=values["version"],  # type: ignore[arg-type]
        host=values["host"] or "127.0.0.1",  # type: ignore[arg-type]
        port=values["port"] if values["port"] is not None or values["fd"] is not None else DEFAULT_PORT,  # type: ignore[arg-type]
        fd=values["fd"],  # type: ignore[arg-type]
        workers=values["workers"] or 1,  # type: ignore[arg-type]
        max_batch_size=values["max_batch_size"] or DEFAULT_MAX_BATCH_SIZE,  # type: ignore[arg-type]
        log_level=values["log_level"] or "INFO",  # type: ignore[arg-type]
    )
