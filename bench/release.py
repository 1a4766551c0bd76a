"""Benchmark the release engine on the whole stack: rollback latency and failed requests during traffic changes.

The script starts its own portal on PostgreSQL and Redis: gunicorn (2 workers),
a Celery worker (concurrency 2), Celery beat and the gateway (2 worker
processes, route polling every 0.2 s). It registers two versions of the demo
breast-cancer model and releases them to one endpoint, with real model
servers. Meanwhile a separate load process sends 1-row predictions through the
gateway at a fixed rate. The load is an open loop: a request every 1/rate
seconds, whatever the responses do.

Two measurements, under the same load:

1. Traffic changes: a blue/green switch, a rollback, a canary with four steps
   (5, 25, 50, 75 %) and its promotion, and a second rollback. Each phase
   between two route changes reports its requests, failed requests (any status
   but 200, or no response) and the share the candidate served.
2. Rollback latency, repeated: release the second version (blue/green), then
   roll it back. Two figures per rollback, both from sending the rollback
   request:
   - until every gateway process logged that it applied the rollback's route
     revision, after which each new request goes to the stable version;
   - as clients see it: until the point after which every request sent got
     the stable version. This is an upper bound, because the switch happened
     between the last request that the candidate served and the next request
     sent (1/rate later). Requests that wait in queues on a busy machine are
     routed later than they were sent, so this figure can be lower than the
     first one, down to 0.

Run from the repository root, with PostgreSQL and Redis on 127.0.0.1::

    .venv/bin/python bench/release.py [--rate 200] [--rollbacks 20]

It creates the database named in --database-url if it does not exist and
writes the raw figures to bench/results/release-<date>.json. The load
generator shares the cores with every part of the portal.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-breast-cancer"
STARTUP_TIMEOUT_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The stack


class Stack:
    """The portal's processes, started in their own process groups and stopped by PID."""

    def __init__(self, env: dict[str, str], log_dir: Path, gateway_workers: int):
        self.env = env
        self.log_dir = log_dir
        self.web_url = f"http://127.0.0.1:{free_port()}"
        self.gateway_url = f"http://127.0.0.1:{free_port()}"
        self.gateway_workers = gateway_workers
        self.children: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        python = sys.executable
        self._run("migrate", [python, "manage.py", "migrate", "--noinput"])
        commands = {
            "web": [python, "-m", "gunicorn", "mlops_portal.wsgi", "--bind", self.web_url.removeprefix("http://"),
                    "--workers", "2", "--threads", "4"],
            "worker": [python, "-m", "celery", "-A", "mlops_portal", "worker", "--loglevel", "INFO", "--concurrency", "2",
                       "--without-mingle", "--without-gossip"],
            "beat": [python, "-m", "celery", "-A", "mlops_portal", "beat", "--loglevel", "INFO"],
            "gateway": [python, "-m", "gateway", "--host", "127.0.0.1", "--port", self.gateway_url.rsplit(":", 1)[1],
                        "--workers", str(self.gateway_workers), "--portal-url", self.web_url, "--poll-interval", "0.2"],
        }
        for name, command in commands.items():
            with open(self.log_dir / f"{name}.log", "ab") as log_file:
                self.children[name] = subprocess.Popen(
                    command, stdout=log_file, stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT, start_new_session=True
                )
        _wait_for(f"{self.web_url}/accounts/login/", "the web server")
        _wait_for(f"{self.gateway_url}/v2/health/ready", "the gateway")

    def _run(self, name: str, command: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log_file:
            subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT, check=True)

    def stop(self) -> None:
        """Stop the portal's processes, then the model servers the worker started in their own sessions."""
        for name, process in reversed(list(self.children.items())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.children.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

        from deployments.runtimes.local import LocalRuntime

        runtime = LocalRuntime(Path(self.env["PORTAL_VAR_DIR"]) / "servers", code_dir=REPO_ROOT)
        for handle in runtime.list_servers():
            runtime.stop(handle, grace_seconds=5)


def _wait_for(url: str, service: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{service} did not respond at {url} within {STARTUP_TIMEOUT_SECONDS} s. Its log is in the logs folder.")


def zip_folder(folder: Path, destination: Path) -> Path:
    with zipfile.ZipFile(destination, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, str(path.relative_to(folder)))
    return destination


def create_database(database_url: str) -> None:
    """Create the benchmark database when it does not exist yet."""
    import psycopg
    from urllib.parse import urlsplit

    name = urlsplit(database_url).path.lstrip("/")
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def api_token(env: dict[str, str]) -> str:
    """Create an admin user and its API token in the benchmark database."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "user, _ = get_user_model().objects.get_or_create(username='bench', defaults={'is_staff': True, 'is_superuser': True})\n"
        "print(Token.objects.get_or_create(user=user)[0].key)\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True
    )
    return result.stdout.strip().splitlines()[-1]


# The load generator


def run_load(url: str, payload: dict, rate: float, stop, output: str) -> None:
    """Send requests at `rate` per second until `stop` is set, then write one JSON line per request."""
    asyncio.run(_load(url, payload, rate, stop, output))


async def _load(url: str, payload: dict, rate: float, stop, output: str) -> None:
    import aiohttp

    body = json.dumps(payload).encode()
    records: list[tuple[float, float, float, int, str | None]] = []
    pending: set[asyncio.Task] = set()

    async def one(session: aiohttp.ClientSession) -> None:
        sent, sent_wall = time.monotonic(), time.time()
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                status, version = response.status, response.headers.get("x-model-version")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            status, version = 0, None
        records.append((sent, sent_wall, time.monotonic() - sent, status, version))

    interval = 1.0 / rate
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        next_at = time.monotonic()
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += interval
            task = asyncio.create_task(one(session))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    with open(output, "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


class Load:
    """The load generator as a separate process, so its timing does not share this process's interpreter lock."""

    def __init__(self, url: str, payload: dict, rate: float, work_dir: Path):
        self.output = work_dir / "requests.jsonl"
        self.stop_event = multiprocessing.Event()
        self.process = multiprocessing.Process(target=run_load, args=(url, payload, rate, self.stop_event, str(self.output)))

    def __enter__(self) -> Load:
        self.process.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_event.set()
        self.process.join(timeout=60)

    def records(self) -> list[tuple[float, float, float, int, str | None]]:
        with open(self.output) as handle:
            return [tuple(json.loads(line)) for line in handle]


# Portal API steps


class Portal:
    def __init__(self, web_url: str, token: str):
        self.api = httpx.Client(base_url=web_url, headers={"Authorization": f"Token {token}"}, timeout=60)

    def register(self, zip_path: Path) -> int:
        with open(zip_path, "rb") as handle:
            response = self.api.post(f"/api/v1/models/{MODEL}/versions/", files={"artifact": ("model.zip", handle, "application/zip")})
        response.raise_for_status()
        number = response.json()["version"]
        body = self._wait(f"/api/v1/models/{MODEL}/versions/{number}/", lambda body: body["status"] != "pending")
        if body["status"] != "ready":
            raise SystemExit(f"{MODEL} v{number} failed its check: {body['status_reason']}")
        return number

    def release(self, endpoint: str, version: int, wait: bool = True, **extra) -> dict:
        body = {"endpoint": endpoint, "environment": "development", "model": MODEL, "version": version, **extra}
        response = self.api.post("/api/v1/releases/", json=body)
        response.raise_for_status()
        created = response.json()
        if not wait:
            return created
        finished = self.wait_final(created["id"])
        if finished["state"] != "promoted":
            raise SystemExit(f"Release {created['id']} ended {finished['state']}: {finished['failure_reason']}")
        return finished

    def wait_final(self, release_id: int) -> dict:
        final = ("promoted", "failed", "aborted", "rolled_back")
        return self._wait(f"/api/v1/releases/{release_id}/", lambda body: body["state"] in final)

    def rollback(self, release_id: int) -> dict:
        response = self.api.post(f"/api/v1/releases/{release_id}/rollback/", json={"reason": "benchmark"})
        response.raise_for_status()
        return response.json()

    def traffic_events(self, release_id: int) -> list[dict]:
        events = self.api.get(f"/api/v1/releases/{release_id}/events/").json()
        return [event for event in events if event["kind"] in ("traffic", "rollback")]

    def _wait(self, url: str, done, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.api.get(url).json()
            if done(body):
                return body
            time.sleep(0.1)
        raise SystemExit(f"Timed out after {timeout:.0f} s waiting for {url} to reach the expected state")


def wait_for_version(gateway_url: str, endpoint: str, payload: dict, version: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.post(f"{gateway_url}/endpoints/{endpoint}/invocations", json=payload, timeout=10)
        if response.headers.get("x-model-version") == str(version):
            return
        time.sleep(0.05)
    raise SystemExit(f"The gateway did not route {endpoint} to v{version} within {timeout:.0f} s")


# Measurements


def traffic_changes(portal: Portal, endpoint: str, candidate: int, pause: float) -> list[tuple[str, float]]:
    """Run the switch, rollback, canary and rollback, and return (phase name, wall time it starts) marks."""
    marks = [("stable only", time.time())]
    time.sleep(pause)

    switch = portal.release(endpoint, candidate)
    marks += [("after blue/green switch to the candidate", _event_time(event)) for event in portal.traffic_events(switch["id"])]
    time.sleep(pause)

    sent = time.time()
    portal.rollback(switch["id"])
    marks.append(("after rollback to the stable version", sent))
    time.sleep(pause)

    steps = [{"weight": 5}, {"pause": {"duration": pause}}, {"weight": 25}, {"pause": {"duration": pause}},
             {"weight": 50}, {"pause": {"duration": pause}}, {"weight": 75}, {"pause": {"duration": pause}}]
    canary = portal.release(endpoint, candidate, strategy="canary", plan={"steps": steps})
    for event in portal.traffic_events(canary["id"]):
        weight = event["data"].get("canary_weight")
        name = f"canary at {weight:g} %" if weight is not None else "after the canary's promotion"
        marks.append((name, _event_time(event)))
    time.sleep(pause)

    sent = time.time()
    portal.rollback(canary["id"])
    marks.append(("after the second rollback", sent))
    time.sleep(pause)
    marks.append(("end", time.time()))
    return marks


def _event_time(event: dict) -> float:
    return datetime.datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).timestamp()


def phase_table(records, marks, candidate: int) -> list[dict]:
    rows = []
    for (name, start), (_, end) in zip(marks, marks[1:]):
        inside = [record for record in records if start <= record[1] < end]
        failed = sum(1 for record in inside if record[3] != 200)
        on_candidate = sum(1 for record in inside if record[4] == str(candidate))
        rows.append({
            "phase": name,
            "seconds": round(end - start, 2),
            "requests": len(inside),
            "failed": failed,
            "candidate_share": round(on_candidate / len(inside), 4) if inside else None,
        })
    return rows


def rollback_latencies(portal: Portal, gateway_url: str, endpoint: str, payload: dict, candidate: int, count: int) -> list[dict]:
    """Release and roll back `count` times, and return each rollback's send times, API duration and route revision."""
    rollbacks = []
    for _ in range(count):
        promoted = portal.release(endpoint, candidate)
        wait_for_version(gateway_url, endpoint, payload, candidate)
        time.sleep(1.0)
        sent, sent_wall = time.monotonic(), time.time()
        portal.rollback(promoted["id"])
        api_seconds = time.monotonic() - sent
        revision = next(event["data"]["revision"] for event in portal.traffic_events(promoted["id"]) if event["kind"] == "rollback")
        rollbacks.append({"release": promoted["id"], "sent": sent, "sent_wall": sent_wall, "api_seconds": api_seconds, "revision": revision})
        time.sleep(1.5)
    return rollbacks


def gateway_apply_seconds(gateway_log: Path, rollbacks: list[dict], processes: int) -> list[float | None]:
    """For each rollback, return seconds from sending it until every gateway process logged its revision applied.

    None when fewer than `processes` processes logged it.
    """
    applied: dict[int, dict[str, float]] = {}
    pattern = re.compile(r"^(\S+ \S+) INFO \[(\d+)\] gateway: route table revision (\d+) applied")
    for line in gateway_log.read_text(errors="replace").splitlines():
        match = pattern.match(line)
        if match:
            moment = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            applied.setdefault(int(match.group(3)), {})[match.group(2)] = moment

    seconds = []
    for rollback in rollbacks:
        by_process = applied.get(rollback["revision"], {})
        seconds.append(max(by_process.values()) - rollback["sent_wall"] if len(by_process) >= processes else None)
    return seconds


def rollback_figures(records, rollbacks, stable: int, window: float = 1.5) -> list[float]:
    """For each rollback, return seconds until every later request got the stable version (an upper bound)."""
    by_time = sorted(records)
    latencies = []
    for rollback in rollbacks:
        sent = rollback["sent"]
        after = [record for record in by_time if sent <= record[0] < sent + window]
        last_candidate = max((index for index, record in enumerate(after) if record[4] != str(stable)), default=None)
        if last_candidate is None:
            switched_at = after[0][0] if after else sent
        elif last_candidate + 1 < len(after):
            switched_at = after[last_candidate + 1][0]
        else:
            switched_at = sent + window
        latencies.append(switched_at - sent)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def machine_description() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(memory_kb / 1024**2, 1),
        "python": platform.python_version(), "load_average": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second sent through the gateway")
    parser.add_argument("--rollbacks", type=int, default=20, help="number of timed rollbacks")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds each traffic phase lasts (canary pause steps and waits between changes)")
    parser.add_argument("--gateway-workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/mlops_portal_engine")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results", help="folder for the JSON results")
    options = parser.parse_args()

    work_dir = Path(tempfile.mkdtemp(prefix="bench-release-"))
    log_dir = work_dir / "logs"
    log_dir.mkdir()
    print(f"Logs of the portal's processes: {log_dir}")
    env = {
        **os.environ,
        "DJANGO_DEBUG": "true",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "PORTAL_GATEWAY_TOKEN": secrets.token_urlsafe(32),
        "DATABASE_URL": options.database_url,
        "REDIS_URL": options.redis_url,
        "PORTAL_VAR_DIR": str(work_dir / "var"),
        "PORTAL_SCALE_DOWN_DELAY": "10",
        "PYTHONUNBUFFERED": "1",
    }
    env["GATEWAY_TOKEN"] = env["PORTAL_GATEWAY_TOKEN"]

    sys.path.insert(0, str(REPO_ROOT))
    from mlops_portal import demo

    zips = []
    for number, regularization in ((1, 1.0), (2, 0.05)):
        folder = demo.save_model(work_dir / f"model-{number}", regularization=regularization)
        zips.append(zip_folder(folder, work_dir / f"model-{number}.zip"))

    create_database(options.database_url)
    stack = Stack(env, log_dir, options.gateway_workers)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    try:
        stack.start()
        portal = Portal(stack.web_url, api_token(env))
        stable, candidate = (portal.register(path) for path in zips)
        endpoint = f"bench-{int(time.time())}"
        payload = portal.api.get(f"/api/v1/models/{MODEL}/versions/{stable}/").json()["input_example"]
        portal.release(endpoint, stable)
        wait_for_version(stack.gateway_url, endpoint, payload, stable)

        url = f"{stack.gateway_url}/endpoints/{endpoint}/invocations"
        with Load(url, payload, options.rate, work_dir) as load:
            time.sleep(2.0)
            marks = traffic_changes(portal, endpoint, candidate, options.pause)
            rollbacks = rollback_latencies(portal, stack.gateway_url, endpoint, payload, candidate, options.rollbacks)
        records = load.records()
    finally:
        stack.stop()

    phases = phase_table(records, marks, candidate)
    latencies = rollback_figures(records, rollbacks, stable)
    applied = gateway_apply_seconds(log_dir / "gateway.log", rollbacks, options.gateway_workers)
    applied_known = [value for value in applied if value is not None]
    sent_seconds = max(record[0] for record in records) - min(record[0] for record in records)
    result = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": machine_description(),
        "load_average_before": load_before,
        "rate_requested": options.rate,
        "rate_sent": round(len(records) / sent_seconds, 1),
        "requests": len(records),
        "failed": sum(1 for record in records if record[3] != 200),
        "phases": phases,
        "rollback_seconds": [round(value, 4) for value in latencies],
        "rollback_api_seconds": [round(rollback["api_seconds"], 4) for rollback in rollbacks],
        "rollback_gateway_seconds": [None if value is None else round(value, 4) for value in applied],
        "rollback_gateway_p50": round(statistics.median(applied_known), 4),
        "rollback_gateway_p95": round(percentile(applied_known, 0.95), 4),
        "rollback_gateway_max": round(max(applied_known), 4),
        "rollback_p50": round(statistics.median(latencies), 4),
        "rollback_p95": round(percentile(latencies, 0.95), 4),
        "rollback_max": round(max(latencies), 4),
        "logs": str(log_dir),
    }
    options.output.mkdir(parents=True, exist_ok=True)
    path = options.output / f"release-{started:%Y%m%d-%H%M}.json"
    path.write_text(json.dumps(result, indent=2))
    print_summary(result)
    print(f"\nRaw figures: {path}")
    return 0


def print_summary(result: dict) -> None:
    print(f"{result['requests']} requests at {result['rate_sent']} req/s, {result['failed']} failed")
    print("\n| phase | seconds | requests | failed | candidate share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in result["phases"]:
        share = "" if row["candidate_share"] is None else f"{row['candidate_share'] * 100:.1f} %"
        print(f"| {row['phase']} | {row['seconds']} | {row['requests']} | {row['failed']} | {share} |")
    rollbacks = len(result["rollback_seconds"])
    print(f"\nRollback request until every gateway process applied it ({rollbacks} rollbacks): "
          f"p50 {result['rollback_gateway_p50'] * 1000:.0f} ms, p95 {result['rollback_gateway_p95'] * 1000:.0f} ms, "
          f"max {result['rollback_gateway_max'] * 1000:.0f} ms")
    print(f"Rollback request until every request sent got the stable version: "
          f"p50 {result['rollback_p50'] * 1000:.0f} ms, p95 {result['rollback_p95'] * 1000:.0f} ms, "
          f"max {result['rollback_max'] * 1000:.0f} ms")
    print(f"Rollback API call: p50 {statistics.median(result['rollback_api_seconds']) * 1000:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
