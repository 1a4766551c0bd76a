"""Unit tests for command-line and environment settings, and the exit code on bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError, parse_settings
from tests.gateway.servers import REPOSITORY_ROOT


def test_settings_defaults_with_portal():
    settings = parse_settings(["--portal-url", "http://127.0.0.1:8000/", "--token", "secret"], environ={})

    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.workers == 1
    assert settings.portal_url == "http://127.0.0.1:8000"
    assert settings.poll_interval == 0.2
    assert settings.report_interval == 1.0


def test_settings_read_environment():
    environ = {
        "GATEWAY_PORTAL_URL": "http://127.0.0.1:8000",
        "GATEWAY_TOKEN": "secret",
        "GATEWAY_PORT": "9000",
        "GATEWAY_WORKERS": "3",
        "GATEWAY_POLL_INTERVAL": "0.5",
    }

    settings = parse_settings([], environ=environ)

    assert settings.port == 9000
    assert settings.workers == 3
    assert settings.poll_interval == 0.5
    assert settings.token == "secret"


def test_settings_option_wins_over_environment():
    environ = {"GATEWAY_PORTAL_URL": "http://127.0.0.1:8000", "GATEWAY_TOKEN": "secret", "GATEWAY_PORT": "9000"}

    settings = parse_settings(["--port", "9001"], environ=environ)

    assert settings.port == 9001


def test_settings_environment_round_trip(tmp_path: Path):
    routes = tmp_path / "routes.json"
    routes.write_text('{"revision": 1, "endpoints": {}}')
    settings = parse_settings(["--routes-file", str(routes), "--workers", "2", "--report-interval", "2.5"], environ={})

    copied = Settings.from_environ(settings.to_environ())

    assert copied == settings


def test_settings_repr_hides_token():
    settings = parse_settings(["--portal-url", "http://127.0.0.1:8000", "--token", "secret-value"], environ={})

    assert "secret-value" not in repr(settings)


PORTAL = ["--portal-url", "http://127.0.0.1:8000", "--token", "t"]

INVALID_OPTIONS = [
    ("port not a number", [*PORTAL, "--port", "http"],
     "--port (GATEWAY_PORT): expected an integer from 1 to 65535, got 'http'"),
    ("port too large", [*PORTAL, "--port", "70000"], "--port (GATEWAY_PORT): expected an integer from 1 to 65535"),
    ("zero workers", [*PORTAL, "--workers", "0"], "--workers (GATEWAY_WORKERS): expected an integer from 1 to 256"),
    ("negative poll interval", [*PORTAL, "--poll-interval", "-1"],
     "--poll-interval (GATEWAY_POLL_INTERVAL): expected a number of seconds above 0 and at most 60"),
    ("report interval text", [*PORTAL, "--report-interval", "often"],
     "--report-interval (GATEWAY_REPORT_INTERVAL): expected a number of seconds above 0"),
    ("portal url without scheme", ["--portal-url", "127.0.0.1:8000", "--token", "t"],
     "--portal-url (GATEWAY_PORTAL_URL): expected an http:// or https:// URL"),
    ("log level unknown", [*PORTAL, "--log-level", "loud"],
     "--log-level (GATEWAY_LOG_LEVEL): expected one of critical"),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(argv, message) for _, argv, message in INVALID_OPTIONS],
    ids=[case for case, _, _ in INVALID_OPTIONS],
)
def test_settings_invalid_value_names_option(argv, message):
    with pytest.raises(SettingsError) as raised:
        parse_settings(argv, environ={})

    assert message in str(raised.value)


def test_settings_missing_source():
    with pytest.raises(SettingsError) as raised:
        parse_settings([], environ={})

    assert "missing route table source" in str(raised.value)


def test_settings_portal_without_token():
    with pytest.raises(SettingsError) as raised:
        parse_settings(["--portal-url", "http://127.0.0.1:8000"], environ={})

    assert "--portal-url requires --token" in str(raised.value)


def test_settings_both_sources(tmp_path: Path):
    routes = tmp_path / "routes.json"
    routes.write_text("{}")

    with pytest.raises(SettingsError) as raised:
        parse_settings(["--portal-url", "http://127.0.0.1:8000", "--token", "t", "--routes-file", str(routes)],
                       environ={})

    assert "exclude each other" in str(raised.value)


def test_settings_routes_file_missing(tmp_path: Path):
    with pytest.raises(SettingsError) as raised:
        parse_settings(["--routes-file", str(tmp_path / "absent.json")], environ={})

    assert "--routes-file (GATEWAY_ROUTES_FILE)" in str(raised.value)
    assert "is not a file" in str(raised.value)


def run_gateway_command(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv], cwd=REPOSITORY_ROOT, capture_output=True, text=True,
        timeout=30, env=env,
    )


def test_command_bad_port_exits_2():
    result = run_gateway_command("--port", "eighty", "--routes-file", "/nonexistent")

    assert result.returncode == 2
    assert "--port (GATEWAY_PORT): expected an integer from 1 to 65535, got 'eighty'" in result.stderr


def test_command_bad_environment_exits_2():
    result = run_gateway_command(env={"PATH": "/usr/bin:/bin", "GATEWAY_WORKERS": "many"})

    assert result.returncode == 2
    assert "--workers (GATEWAY_WORKERS): expected an integer" in result.stderr


def test_command_invalid_routes_file_exits_2(tmp_path: Path):
    routes = tmp_path / "routes.json"
    routes.write_text('{"revision": 1, "endpoints": {"iris": {"backends": "none"}}}')

    result = run_gateway_command("--routes-file", str(routes))

    assert result.returncode == 2
    assert "invalid route table" in result.stderr
    assert "endpoints['iris'].backends: expected a list, got a string" in result.stderr


def test_command_routes_file_not_json_exits_2(tmp_path: Path):
    routes = tmp_path / "routes.json"
    routes.write_text("revision: 1")

    result = run_gateway_command("--routes-file", str(routes))

    assert result.returncode == 2
    assert "invalid JSON" in result.stderr
