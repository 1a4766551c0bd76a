"""Environment for every test run, loaded as a plugin (-p) so it runs before pytest-django reads the settings."""

import os
import tempfile
import uuid

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("PORTAL_GATEWAY_TOKEN", "test-gateway-token")
os.environ.setdefault("PORTAL_VAR_DIR", tempfile.mkdtemp(prefix="mlops-portal-test-"))
os.environ.setdefault("PORTAL_SCALE_DOWN_DELAY", "3")
# Workers started by this run consume only this run's queue, so test runs
# that share a Redis database do not take each other's tasks.
os.environ.setdefault("PORTAL_CELERY_QUEUE", f"test-{uuid.uuid4().hex[:12]}")
