"""Django settings, read from environment variables through mlops_portal.env.

With no DATABASE_URL and no REDIS_URL the portal runs on SQLite and on kombu's
filesystem broker, so a machine with only Python can run it. Production sets
DJANGO_SECRET_KEY, DATABASE_URL and REDIS_URL, and leaves DJANGO_DEBUG off.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mlops_portal.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_required,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)


def _local_secret(name: str) -> str:
    """Return a secret kept in VAR_DIR, created on first use; only for DEBUG runs."""
    path = VAR_DIR / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Environment variable DJANGO_SECRET_KEY is missing: set it to a long random string, "
            "or set DJANGO_DEBUG=true for a local run."
        )
    SECRET_KEY = _local_secret("django-secret-key")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "django_celery_results",
    "django_celery_beat",
    "audit",
    "registry",
    "deployments",
]

MIDDLEWARE = [
    "registry.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "mlops_portal.middleware.PortalAccessMiddleware",
]

ROOT_URLCONF = "mlops_portal.urls"
WSGI_APPLICATION = "mlops_portal.wsgi.application"
ASGI_APPLICATION = "mlops_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mlops_portal.context_processors.portal",
            ],
        },
    },
]

# Database: SQLite in VAR_DIR unless DATABASE_URL names another one.
DATABASE_URL = env_url(
    "DATABASE_URL",
    None,
    schemes=("postgres", "postgresql", "sqlite"),
)
if DATABASE_URL is None:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "portal.sqlite3",
            # Web, worker and beat write from separate processes: WAL and
            # immediate transactions turn lock conflicts into short waits.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory, so that worker processes started by the
            # tests share the test database.
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    }
else:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"Environment variable DATABASE_URL is invalid: {exc}.") from None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("PORTAL_ARTIFACT_ROOT", str(VAR_DIR / "artifacts"))).resolve()

# Artifacts go to MEDIA_ROOT, or to an S3-compatible bucket through
# django-storages. The registry uses only Django's storage API, so either works.
ARTIFACT_STORAGE = env_choice("PORTAL_ARTIFACT_STORAGE", "filesystem", ("filesystem", "s3"))
if ARTIFACT_STORAGE == "s3":
    ARTIFACT_STORAGE_CONFIG = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_required("PORTAL_S3_BUCKET"),
            # MinIO, Ceph and other S3-compatible services; AWS when unset.
            "endpoint_url": env_url("PORTAL_S3_ENDPOINT_URL", None, schemes=("http", "https")),
            "region_name": env_str("PORTAL_S3_REGION"),
            "location": env_str("PORTAL_S3_PREFIX", ""),
            # A registration after a deletion of the same content must not
            # overwrite the key that the deletion removes once it commits.
            "file_overwrite": False,
        },
    }
else:
    ARTIFACT_STORAGE_CONFIG = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

STORAGES = {
    "default": ARTIFACT_STORAGE_CONFIG,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Uploads larger than this spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# Security: secure cookies and HTTPS settings whenever DEBUG is off.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# The gateway syncs its route table over the internal network, often without TLS.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/gateway/"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    # Token first: DRF answers an anonymous request with the first class's
    # challenge, so scripts get 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mlops_portal.permissions.PortalAccess"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "mlops_portal.api.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "mlops_portal.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps Portal API",
    "DESCRIPTION": "Register MLflow models, release them to endpoints and control rollouts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["mlops_portal.permissions.PortalAccess"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Releases and image builds both have a "state" field with different choices.
    "ENUM_NAME_OVERRIDES": {
        "ReleaseStateEnum": "deployments.models.Release.State",
        "BuildStateEnum": "deployments.models.ImageBuild.State",
    },
}

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport.
REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss"))
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task unacknowledged for this long is delivered again; every task
        # step finishes well inside it (the release controller reschedules
        # itself instead of waiting).
        "visibility_timeout": env_int("PORTAL_BROKER_VISIBILITY_TIMEOUT", 600, minimum=30),
    }
else:
    # A host name, although the transport ignores it, keeps kombu from warning
    # that none was supplied.
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Without this, kombu keeps its exchange tables in ./control.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    # kombu's filesystem transport expects its folders to exist.
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)

# Several portals (or test runs) can share one Redis database when each uses
# its own queue name.
CELERY_TASK_DEFAULT_QUEUE = env_str("PORTAL_CELERY_QUEUE", "celery")
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("PORTAL_CELERY_EAGER", False)

# Portal settings.
PORTAL_GATEWAY_URL = env_url("PORTAL_GATEWAY_URL", "http://127.0.0.1:8080", schemes=("http", "https"))
PORTAL_GATEWAY_TOKEN = env_str("PORTAL_GATEWAY_TOKEN")
if PORTAL_GATEWAY_TOKEN is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Environment variable PORTAL_GATEWAY_TOKEN is missing: set it to a long random string "
            "and give the same value to the gateway (GATEWAY_TOKEN)."
        )
    PORTAL_GATEWAY_TOKEN = _local_secret("gateway-token")

PORTAL_INSTANCE = env_str("PORTAL_INSTANCE", "default")
PORTAL_MAX_UPLOAD_BYTES = env_int("PORTAL_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1024)
PORTAL_MODEL_CACHE_DIR = Path(env_str("PORTAL_MODEL_CACHE_DIR", str(VAR_DIR / "model-cache"))).resolve()
PORTAL_SERVER_DIR = Path(env_str("PORTAL_SERVER_DIR", str(VAR_DIR / "servers"))).resolve()
# The local runtime binds model servers to this address and gives gateways
# this host in their URLs; docker-compose uses 0.0.0.0 and the worker's name.
PORTAL_LOCAL_BIND_HOST = env_str("PORTAL_LOCAL_BIND_HOST", "127.0.0.1")
PORTAL_LOCAL_ADVERTISE_HOST = env_str("PORTAL_LOCAL_ADVERTISE_HOST", PORTAL_LOCAL_BIND_HOST)
PORTAL_SERVER_WORKERS = env_int("PORTAL_SERVER_WORKERS", 1, minimum=1, maximum=64)
PORTAL_SERVER_READY_TIMEOUT = env_float("PORTAL_SERVER_READY_TIMEOUT", 120.0, minimum=1.0)
PORTAL_SCALE_DOWN_DELAY = env_float("PORTAL_SCALE_DOWN_DELAY", 30.0, minimum=0.0)
# An aborted release's candidate keeps running this many seconds for
# inspection (logs, direct requests), unless a retry uses it again.
PORTAL_ABORTED_CANDIDATE_RETENTION = env_float("PORTAL_ABORTED_CANDIDATE_RETENTION", 3600.0, minimum=0.0)
PORTAL_GATEWAY_SYNC_TIMEOUT = env_float("PORTAL_GATEWAY_SYNC_TIMEOUT", 10.0, minimum=0.0)
PORTAL_CONTROLLER_INTERVAL = env_float("PORTAL_CONTROLLER_INTERVAL", 0.5, minimum=0.05)
# A release step (readiness wait, canary step, analysis) that takes longer than
# its planned duration plus this many seconds fails or pauses the release.
PORTAL_PROGRESS_DEADLINE = env_float("PORTAL_PROGRESS_DEADLINE", 600.0, minimum=1.0)
# The periodic sweep resumes a running release whose next controller run is
# this many seconds overdue, because the worker that held it died.
PORTAL_STALL_GRACE = env_float("PORTAL_STALL_GRACE", 15.0, minimum=1.0)
# One controller run (one release step) is stopped after this many seconds and
# runs again later. It must end well inside the broker's visibility timeout,
# or the broker would deliver the same run to a second worker meanwhile.
PORTAL_CONTROLLER_STEP_TIMEOUT = env_float("PORTAL_CONTROLLER_STEP_TIMEOUT", 300.0, minimum=10.0)
if REDIS_URL and PORTAL_CONTROLLER_STEP_TIMEOUT + 30 > CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]:
    raise ImproperlyConfigured(
        f"PORTAL_CONTROLLER_STEP_TIMEOUT={PORTAL_CONTROLLER_STEP_TIMEOUT:g} must be at least 30 s below "
        f"PORTAL_BROKER_VISIBILITY_TIMEOUT={CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']}; "
        "lower the first or raise the second."
    )

# Limits for MLflow's HTTP client, used when the registry imports from an
# MLflow tracking server. MLflow 3.17 reads them only from these environment
# variables, at each request (mlflow/utils/rest_utils.py), so the portal checks
# an operator's values and writes its defaults back into its own process
# environment. MLflow's defaults (7 retries, backoff factor 2, 120 s timeout)
# kept a web request waiting about four minutes for a server that was down.
# Child processes such as local model servers inherit these values; they load
# models from local files and make no MLflow HTTP requests.
MLFLOW_HTTP_REQUEST_MAX_RETRIES = env_int("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 1, minimum=0, maximum=10)
MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR = env_int("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 1, minimum=0, maximum=120)
MLFLOW_HTTP_REQUEST_TIMEOUT = env_int("MLFLOW_HTTP_REQUEST_TIMEOUT", 10, minimum=1)
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(MLFLOW_HTTP_REQUEST_MAX_RETRIES)
os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR)
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(MLFLOW_HTTP_REQUEST_TIMEOUT)
# Seconds that the registry waits for a TCP connection to an MLflow tracking
# server or database before it calls MLflow, so a server that is down fails fast.
PORTAL_MLFLOW_CONNECT_TIMEOUT = env_float("PORTAL_MLFLOW_CONNECT_TIMEOUT", 3.0, minimum=0.1)

# The Docker runtime: enabled when DOCKER_HOST names an engine, such as
# unix:///var/run/docker.sock or Podman's Docker-compatible socket. Each
# environment then chooses "local" or "docker" as its runtime.
DOCKER_HOST = env_url("DOCKER_HOST", None, schemes=("unix", "tcp", "ssh", "http", "https"))
PORTAL_DOCKER_BASE_IMAGE = env_str("PORTAL_DOCKER_BASE_IMAGE", "localhost/mlops-portal-base:bookworm")
# Package sources for pip during image builds: a folder of wheels for offline
# builds, else a package index (PyPI unless PORTAL_DOCKER_INDEX_URL names another).
PORTAL_DOCKER_WHEELHOUSE = env_str("PORTAL_DOCKER_WHEELHOUSE", env_str("MLOPS_PORTAL_WHEELHOUSE"))
PORTAL_DOCKER_INDEX_URL = env_url(
    "PORTAL_DOCKER_INDEX_URL", None if PORTAL_DOCKER_WHEELHOUSE else "https://pypi.org/simple", schemes=("https", "http")
)
# With a network, containers join it and gateways reach them by name (as in
# docker-compose.yml); without one, ports are published on the publish host.
PORTAL_DOCKER_NETWORK = env_str("PORTAL_DOCKER_NETWORK")
PORTAL_DOCKER_PUBLISH_HOST = env_str("PORTAL_DOCKER_PUBLISH_HOST", None if PORTAL_DOCKER_NETWORK else "127.0.0.1")
PORTAL_DOCKER_BUILD_TIMEOUT = env_float("PORTAL_DOCKER_BUILD_TIMEOUT", 900.0, minimum=10.0)

LOG_LEVEL = env_str("PORTAL_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "registry": {"level": LOG_LEVEL},
        "deployments": {"level": LOG_LEVEL},
        "mlops_portal": {"level": LOG_LEVEL},
        "celery": {"level": "INFO"},
    },
}
