"""Settings loaded in a fresh interpreter, as a deployment would load them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "x" * 20 + "production-like-secret-key-with-enough-entropy-1234567890",
    "PORTAL_GATEWAY_TOKEN": "gateway-token-for-the-settings-test",
    "DJANGO_ALLOWED_HOSTS": "portal.example.org",
}


def _run(args, env_overrides, drop=()):
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(env_overrides)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _settings_env(**overrides):
    return {"DJANGO_DEBUG": "false", **PRODUCTION_ENV, **overrides}


def test_check_deploy_passes_with_production_settings():
    completed = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _settings_env(), drop=("DJANGO_DEBUG",))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_missing_secret_key_stops_start_with_variable_name():
    completed = _run(["manage.py", "check"], _settings_env(DJANGO_SECRET_KEY=""))
    assert "DJANGO_SECRET_KEY is missing" in completed.stderr


def test_invalid_database_url_stops_start_with_expected_form():
    completed = _run(["manage.py", "check"], _settings_env(DATABASE_URL="mysql://127.0.0.1/portal"))
    assert "DATABASE_URL='mysql://127.0.0.1/portal' is invalid: expected a URL starting with postgres://" in completed.stderr


def test_invalid_worker_count_stops_start_with_expected_form():
    completed = _run(["manage.py", "check"], _settings_env(PORTAL_SERVER_WORKERS="many"))
    assert "PORTAL_SERVER_WORKERS='many' is invalid: expected a whole number" in completed.stderr


def test_without_database_url_settings_use_sqlite():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    completed = _run(["-c", code], {"DJANGO_SETTINGS_MODULE": "mlops_portal.settings", **_settings_env()}, drop=("DATABASE_URL",))
    assert completed.stdout.strip() == "django.db.backends.sqlite3"


def test_without_redis_url_broker_is_filesystem():
    code = "import django; django.setup(); from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    completed = _run(["-c", code], {"DJANGO_SETTINGS_MODULE": "mlops_portal.settings", **_settings_env()}, drop=("REDIS_URL",))
    assert completed.stdout.strip().startswith("filesystem://")


def test_database_url_selects_postgresql():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    env = {"DJANGO_SETTINGS_MODULE": "mlops_portal.settings", **_settings_env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/x")}
    completed = _run(["-c", code], env)
    assert completed.stdout.strip() == "django.db.backends.postgresql"


def test_mlflow_timeout_default_reaches_mlflow():
    code = (
        "import django; django.setup(); "
        "from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT; print(MLFLOW_HTTP_REQUEST_TIMEOUT.get())"
    )
    env = {"DJANGO_SETTINGS_MODULE": "mlops_portal.settings", **_settings_env()}
    completed = _run(["-c", code], env, drop=("MLFLOW_HTTP_REQUEST_TIMEOUT",))
    assert completed.stdout.strip() == "10"


def test_mlflow_retries_from_environment_reach_mlflow():
    code = (
        "import django; django.setup(); "
        "from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES; print(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get())"
    )
    env = {"DJANGO_SETTINGS_MODULE": "mlops_portal.settings", **_settings_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="4")}
    completed = _run(["-c", code], env)
    assert completed.stdout.strip() == "4"


def test_invalid_mlflow_retries_stop_start_with_expected_form():
    completed = _run(["manage.py", "check"], _settings_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="99"))
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES='99' is invalid: expected a whole number of at most 10" in completed.stderr
