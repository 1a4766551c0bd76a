"""Run the whole portal on this machine with a deployed demo model.

The command migrates, creates an admin user, and trains and registers a
scikit-learn model in a local MLflow store. It then starts the web server, a
Celery worker, beat and the gateway, imports the model into the portal,
deploys it and prints how to call it. Ctrl-C stops every process this command
started, and the model servers. On the next run, every endpoint that served a
version before gets that version started again, so the demo resumes where it
stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from deployments.models import Endpoint, Environment, ModelServer, Release
from deployments.services import releases, servers
from deployments.services.routing import current_stable_server
from mlops_portal import demo
from registry.models import ModelVersion
from registry.services.aliases import set_alias

ENDPOINT = "breast-cancer"


class Command(BaseCommand):
    help = "Run the portal, a worker, beat and the gateway with a deployed demo model."

    def add_arguments(self, parser):
        parser.add_argument("--web-port", type=int, default=8000, help="Port of the web UI and API on 127.0.0.1.")
        parser.add_argument("--gateway-port", type=int, default=8080, help="Port of the prediction gateway on 127.0.0.1.")
        parser.add_argument("--timeout", type=float, default=300, help="Seconds to wait for each startup step.")
        parser.add_argument("--no-wait", action="store_true", help="Stop everything after the demo is up (for checks).")

    def handle(self, *args, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.timeout = options["timeout"]
        # Stop cleanly on Ctrl-C and on `kill`, even when started from a shell
        # that made this process ignore SIGINT (as background jobs do).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        log_dir = settings.VAR_DIR / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)

        try:
            self._run(options, log_dir)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            self._shutdown()

    def _run(self, options, log_dir: Path) -> None:
        self._step("Migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        password = self._create_admin()

        self._step("Training the demo model and registering it in MLflow")
        tracking_uri, model_uri = self._register_in_mlflow()

        web_url = f"http://127.0.0.1:{options['web_port']}"
        gateway_url = f"http://127.0.0.1:{options['gateway_port']}"
        self._start_processes(options, web_url, log_dir)
        self._wait_for(f"{web_url}/accounts/login/", "web server")

        self._step(f"Importing {model_uri} into the portal")
        version = self._import_version(model_uri, tracking_uri)

        restarted = self._restart_live_endpoints()
        release = restarted.get(ENDPOINT)
        if release is None:
            self._step(f"Deploying {version} to endpoint {ENDPOINT}")
            release = self._start_release(ENDPOINT, version)
        release = self._wait_for_release(release)
        version = release.version
        self._wait_for_gateway(gateway_url)
        prediction = self._predict(gateway_url, version.input_example or {})
        self._print_summary(web_url, gateway_url, password, release, version, log_dir, prediction, tracking_uri)

        if options["no_wait"]:
            return
        while all(process.poll() is None for _, process in self.children):
            time.sleep(1)
        name, process = next((name, process) for name, process in self.children if process.poll() is not None)
        raise CommandError(f"The {name} process exited with code {process.returncode}; see {log_dir / (name + '.log')}.")

    def _step(self, message: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {message}"))

    def _create_admin(self) -> str:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def _register_in_mlflow(self) -> tuple[str, str]:
        mlflow_dir = settings.VAR_DIR / "mlflow"
        mlflow_dir.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        if not demo.has_alias(tracking_uri, "champion"):
            demo.log_and_register(tracking_uri, (mlflow_dir / "artifacts").as_uri())
        return tracking_uri, f"models:/{demo.DEMO_MODEL}@champion"

    def _start_processes(self, options, web_url: str, log_dir: Path) -> None:
        self._step("Starting the web server, a Celery worker, beat and the gateway")
        python = sys.executable
        commands = {
            "web": [python, "-m", "gunicorn", "mlops_portal.wsgi", "--bind", f"127.0.0.1:{options['web_port']}",
                    "--workers", "2", "--threads", "4", "--access-logfile", "-",
                    "--logger-class", "mlops_portal.gunicorn_logging.PortalLogger"],
            "worker": [python, "-m", "celery", "-A", "mlops_portal", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [python, "-m", "celery", "-A", "mlops_portal", "beat", "--loglevel", "INFO"],
            "gateway": [python, "-m", "gateway", "--host", "127.0.0.1", "--port", str(options["gateway_port"]),
                        "--portal-url", web_url, "--poll-interval", "0.2"],
        }
        env = {**os.environ, "GATEWAY_TOKEN": settings.PORTAL_GATEWAY_TOKEN}
        for name, command in commands.items():
            with open(log_dir / f"{name}.log", "ab") as log_file:
                process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=settings.BASE_DIR)
            self.children.append((name, process))
            self.stdout.write(f"    {name}: PID {process.pid}, log {log_dir / (name + '.log')}")

    def _import_version(self, model_uri: str, tracking_uri: str) -> ModelVersion:
        from registry.services import versions

        version = (
            ModelVersion.objects.filter(source_uri=model_uri, tracking_uri=tracking_uri)
            .exclude(status=ModelVersion.Status.FAILED)
            .order_by("-created_at")
            .first()
        )
        if version is None:
            version = versions.register_from_mlflow(demo.DEMO_MODEL, model_uri, tracking_uri)
        deadline = time.monotonic() + self.timeout
        while version.status == ModelVersion.Status.PENDING:
            if time.monotonic() > deadline:
                raise CommandError(f"{version} was still being checked after {self.timeout:.0f} s; see the worker log.")
            time.sleep(0.5)
            version.refresh_from_db()
        if version.status == ModelVersion.Status.FAILED:
            raise CommandError(f"{version} failed its load check: {version.status_reason}")

        # The import copies the version, not MLflow's alias, so the README's
        # models:/...@champion examples need the alias set here too.
        if not version.model.aliases.filter(alias="champion").exists():
            set_alias(version.model, "champion", version.version)
        return version

    def _restart_live_endpoints(self) -> dict[str, Release]:
        """Start the version each endpoint served before the last stop again; return the releases by endpoint."""
        started = {}
        for endpoint in Endpoint.objects.select_related("environment"):
            stable = current_stable_server(endpoint)
            if stable is None or stable.is_running or endpoint.releases.filter(state__in=Release.OPEN_STATES).exists():
                continue
            self._step(f"Starting {stable.version} again on endpoint {endpoint.name}, which it served before")
            started[endpoint.name] = self._start_release(endpoint.name, stable.version, endpoint.environment)
            if started[endpoint.name].state == Release.State.AWAITING_APPROVAL:
                self.stdout.write(f"    release {started[endpoint.name].pk} waits for an ops lead's approval")
        return started

    def _start_release(self, endpoint_name: str, version: ModelVersion, environment: Environment | None = None) -> Release:
        environment = environment or Environment.objects.get(name="development")
        endpoint = releases.get_or_create_endpoint(endpoint_name, environment)
        return releases.create_release(endpoint, version, strategy=Release.Strategy.BLUE_GREEN)

    def _wait_for_release(self, release: Release) -> Release:
        deadline = time.monotonic() + self.timeout
        while not release.is_final:
            if time.monotonic() > deadline:
                raise CommandError(f"Release {release.pk} was still {release.state} after {self.timeout:.0f} s.")
            time.sleep(0.5)
            release.refresh_from_db()
        if release.state != Release.State.PROMOTED:
            raise CommandError(f"Release {release.pk} ended {release.state}: {release.failure_reason}")
        return release

    def _wait_for(self, url: str, service: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise CommandError(f"The {service} did not respond at {url} within {self.timeout:.0f} s.") from None
                time.sleep(0.3)

    def _wait_for_gateway(self, gateway_url: str) -> None:
        url = f"{gateway_url}/v2/models/{ENDPOINT}/ready"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise CommandError(f"The gateway did not route {ENDPOINT} within {self.timeout:.0f} s; see var/logs/gateway.log.")

    def _predict(self, gateway_url: str, payload: dict) -> str:
        request = urllib.request.Request(
            f"{gateway_url}/endpoints/{ENDPOINT}/invocations",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def _print_summary(self, web_url, gateway_url, password, release, version, log_dir, prediction, tracking_uri) -> None:
        payload = json.dumps(version.input_example or {})
        self.stdout.write(self.style.SUCCESS("\nMLOps Portal demo is running.\n"))
        self.stdout.write(f"  Web UI      {web_url}/  (user admin, password {password})")
        self.stdout.write(f"  API docs    {web_url}/api/docs/")
        self.stdout.write(f"  Release     {web_url}/releases/{release.pk}/")
        self.stdout.write(f"  Gateway     {gateway_url}/endpoints/{ENDPOINT}/invocations")
        self.stdout.write(f"  MLflow      {tracking_uri}  (the demo model is {demo.DEMO_MODEL})")
        self.stdout.write(f"  Logs        {log_dir}/")
        self.stdout.write("\nPredict with:\n")
        self.stdout.write(
            f"  curl -s -X POST {gateway_url}/endpoints/{ENDPOINT}/invocations "
            f"-H 'Content-Type: application/json' -d '{payload}'\n"
        )
        self.stdout.write(f"It returned {prediction} just now. Press Ctrl-C to stop.")

    def _shutdown(self) -> None:
        for name, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

        for server in ModelServer.objects.filter(state__in=[ModelServer.State.STARTING, ModelServer.State.READY]):
            servers.stop_server(server)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
