"""Benchmark: model and version list pages and endpoints with 10,000 versions.

Fills a fresh PostgreSQL database with 1,000 models (each with a tag and an
alias) and one model with 10,000 versions (each with a tag). Then it times
sequential GET requests through gunicorn (bench/registry_server.py) to the model
list page and API, the model detail page (its first page of versions), the
version list API, and a version list page deep in the cursor chain.

Run from the repository root::

    .venv/bin/python bench/registry_pages.py [--versions 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.registry_server import REPO_ROOT, machine, percentile, portal_server  # noqa: E402

FILL = """
from django.utils import timezone
from registry.models import Artifact, ModelAlias, ModelTag, ModelVersion, RegisteredModel, VersionTag

versions, models = {versions}, {models}
RegisteredModel.objects.bulk_create(RegisteredModel(name=f"model {{i:05d}}", name_key=f"model {{i:05d}}") for i in range(models))
ModelTag.objects.bulk_create(ModelTag(model=m, key="team", value="risk") for m in RegisteredModel.objects.all())
artifact = Artifact.objects.create(sha256="e" * 64, size=1, file="artifacts/ee/e.zip")
big = RegisteredModel.objects.create(name="big", last_version=versions)
created = ModelVersion.objects.bulk_create(
    (ModelVersion(model=big, version=n, artifact=artifact, source="upload", status="ready",
                  flavors={{"python_function": {{}}, "sklearn": {{}}}}, metrics={{"accuracy": 0.9}})
     for n in range(1, versions + 1)), batch_size=2000)
VersionTag.objects.bulk_create((VersionTag(version=v, key="run", value="x") for v in created), batch_size=2000)
ModelAlias.objects.bulk_create(ModelAlias(model=m, alias="champion", version=created[0]) for m in RegisteredModel.objects.all())
ModelVersion.objects.update(created_at=timezone.now())
print(big.pk)
"""


def time_requests(client, url: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        began = time.perf_counter()
        response = client.get(url)
        timings.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} returned {response.status_code}: {response.text[:300]}")
    return timings


def login_cookie(portal) -> dict:
    with portal.client() as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        client.post("/accounts/login/", data={"username": "bench", "password": "bench-password-1", "csrfmiddlewaretoken": token})
        return dict(client.cookies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=200)
    options = parser.parse_args()

    with portal_server("mlops_portal_bench_pages", workers=2) as portal:
        script = FILL.format(versions=options.versions, models=options.models)
        completed = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script], cwd=REPO_ROOT, env=portal.env,
            capture_output=True, text=True, check=True,
        )
        big = completed.stdout.strip().splitlines()[-1]

        with portal.client(timeout=60) as client:
            deep = client.get(f"/api/v1/models/{big}/versions/", params={"page_size": 500}).json()
            for _ in range(10):
                deep = client.get(deep["next"]).json()
            deep_cursor = deep["next"].split("cursor=")[1].split("&")[0]

        targets = {
            "model list page (50 rows)": "/models/",
            "model detail page (50 of 10,000 versions)": f"/models/{big}/",
            "model detail page after 5,500 versions": f"/models/{big}/?cursor={deep_cursor}",
            "model list API (50 rows)": "/api/v1/models/",
            "version list API (50 rows)": f"/api/v1/models/{big}/versions/",
            "version list API (500 rows)": f"/api/v1/models/{big}/versions/?page_size=500",
        }
        cookies = login_cookie(portal)
        rows = []
        with portal.client(timeout=60, cookies=cookies) as client:
            for label, url in targets.items():
                time_requests(client, url, 5)
                timings = time_requests(client, url, options.requests)
                rows.append((label, percentile(timings, 0.5), percentile(timings, 0.95), max(timings)))

    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"data: {options.models} models, one with {options.versions} versions; {options.requests} sequential requests each")
    print("| request | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- |")
    for label, p50, p95, worst in rows:
        print(f"| {label} | {p50 * 1000:.1f} | {p95 * 1000:.1f} | {worst * 1000:.1f} |")


if __name__ == "__main__":
    main()
