"""Gateway settings from command-line options and GATEWAY_* environment variables.

An option on the command line wins over its environment variable. `python -m gateway`
validates the settings once and then writes them back into the environment, so that
every uvicorn worker process (started with the spawn method) reads the same values
through `Settings.from_environ`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

_PORTAL_URL = re.compile(r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class SettingsError(ValueError):
    """An option has an invalid value; the message names the option and the expected form."""


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    portal_url: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    routes_file: Path | None = None
    poll_interval: float = 0.2
    report_interval: float = 1.0
    backend_timeout: float = 30.0
    log_level: str = "info"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings from GATEWAY_* environment variables alone."""
        return parse_settings([], environ)

    def to_environ(self) -> dict[str, str]:
        """Return the GATEWAY_* variables that reproduce these settings in a worker process."""
        values = {}
        for option in _OPTIONS:
            value = getattr(self, option.field)
            if value is not None:
                values[option.env] = str(value)
        return values

    def describe_source(self) -> str:
        """Describe where the route table comes from, without the token."""
        if self.routes_file is not None:
            return f"file {self.routes_file}"
        return f"portal {self.portal_url}"


@dataclasses.dataclass(frozen=True)
class _Option:
    flag: str
    field: str
    metavar: str
    help: str

    @property
    def env(self) -> str:
        return "GATEWAY_" + self.field.upper()


_OPTIONS = (
    _Option("--host", "host", "HOST", "address to listen on (default 127.0.0.1)"),
    _Option("--port", "port", "PORT", "TCP port to listen on (default 8080)"),
    _Option("--workers", "workers", "N", "number of worker processes (default 1)"),
    _Option("--portal-url", "portal_url", "URL",
            "base URL of the portal that serves /api/v1/gateway/routes, e.g. http://127.0.0.1:8000"),
    _Option("--token", "token", "TOKEN",
            "bearer token for the portal; prefer GATEWAY_TOKEN, since options show in the process list"),
    _Option("--routes-file", "routes_file", "PATH",
            "read the route table JSON from this file and reload it when it changes, instead of the portal"),
    _Option("--poll-interval", "poll_interval", "SECONDS",
            "seconds between route table polls or file checks (default 0.2)"),
    _Option("--report-interval", "report_interval", "SECONDS",
            "seconds between counter reports to the portal (default 1.0)"),
    _Option("--backend-timeout", "backend_timeout", "SECONDS",
            "maximum seconds to wait for a model server's full response before answering 504 (default 30)"),
    _Option("--log-level", "log_level", "LEVEL", "one of " + ", ".join(_LOG_LEVELS) + " (default info)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description=(
            "Prediction gateway: splits each endpoint's traffic between model server versions "
            "and forwards requests. Every option can also be set with the environment variable "
            "shown in brackets."
        ),
    )
    for option in _OPTIONS:
        parser.add_argument(
            option.flag, dest=option.field, metavar=option.metavar,
            help=f"{option.help} [{option.env}]",
        )
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Parse and validate the settings, raising SettingsError that names the first invalid option.

    argparse itself exits with status 2 on an unknown option.
    """
    if environ is None:
        environ = os.environ
    arguments = vars(build_parser().parse_args(list(argv)))

    raw = {}
    for option in _OPTIONS:
        value = arguments.get(option.field)
        if value is None:
            value = environ.get(option.env) or None
        raw[option.field] = (option, value)

    values = {
        "host": _host(*raw["host"]),
        "port": _integer(*raw["port"], minimum=1, maximum=65535),
        "workers": _integer(*raw["workers"], minimum=1, maximum=256),
        "portal_url": _portal_url(*raw["portal_url"]),
        "token": raw["token"][1],
        "routes_file": _routes_file(*raw["routes_file"]),
        "poll_interval": _seconds(*raw["poll_interval"], maximum=60.0),
        "report_interval": _seconds(*raw["report_interval"], maximum=3600.0),
        "backend_timeout": _seconds(*raw["backend_timeout"], maximum=3600.0),
        "log_level": _log_level(*raw["log_level"]),
    }
    values = {field: value for field, value in values.items() if value is not None}
    settings = Settings(**values)

    _check_route_source(settings)
    return settings


def _check_route_source(settings: Settings) -> None:
    if settings.portal_url is None and settings.routes_file is None:
        raise SettingsError(
            "missing route table source: give --portal-url URL with --token TOKEN, or --routes-file PATH "
            "(or GATEWAY_PORTAL_URL with GATEWAY_TOKEN, or GATEWAY_ROUTES_FILE)"
        )
    if settings.portal_url is not None and settings.routes_file is not None:
        raise SettingsError("--portal-url and --routes-file exclude each other: give only one of them")
    if settings.portal_url is not None and not settings.token:
        raise SettingsError("--portal-url requires --token TOKEN (or GATEWAY_TOKEN)")


def _name(option: _Option) -> str:
    return f"{option.flag} ({option.env})"


def _host(option: _Option, value: str | None) -> str | None:
    if value is not None and (not value.strip() or any(c.isspace() for c in value)):
        raise SettingsError(f"{_name(option)}: expected a host name or IP address, got {value!r}")
    return value


def _integer(option: _Option, value: str | None, minimum: int, maximum: int) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not minimum <= number <= maximum:
        raise SettingsError(f"{_name(option)}: expected an integer from {minimum} to {maximum}, got {value!r}")
    return number


def _seconds(option: _Option, value: str | None, maximum: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None or not 0 < number <= maximum:
        raise SettingsError(
            f"{_name(option)}: expected a number of seconds above 0 and at most {maximum:g}, got {value!r}"
        )
    return number


def _portal_url(option: _Option, value: str | None) -> str | None:
    if value is None:
        return None
    if not _PORTAL_URL.match(value):
        raise SettingsError(
            f"{_name(option)}: expected an http:// or https:// URL such as http://127.0.0.1:8000, got {value!r}"
        )
    return value.rstrip("/")


def _routes_file(option: _Option, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise SettingsError(f"{_name(option)}: expected the path of a route table JSON file, {value!r} is not a file")
    return path.resolve()


def _log_level(option: _Option, value: str | None) -> str | None:
    if value is None:
        return None
    if value.lower() not in _LOG_LEVELS:
        raise SettingsError(f"{_name(option)}: expected one of {', '.join(_LOG_LEVELS)}, got {value!r}")
    return value.lower()
