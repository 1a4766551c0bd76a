"""Benchmark: 100 concurrent registrations of one model through the API.

Starts the portal on PostgreSQL behind gunicorn (bench/registry_server.py), then
sends 100 uploads of the demo model zip to POST /api/v1/models/NAME/versions/ at
the same moment from 100 threads. Reports whether the version numbers are
distinct and consecutive, the failures, and the latency percentiles.

Run from the repository root::

    .venv/bin/python bench/registry_registrations.py [--registrations 100] [--workers 4]
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.registry_server import machine, percentile, portal_server  # noqa: E402


def demo_zip(folder: Path) -> Path:
    """Save the demo model as an MLflow model folder and zip it with MLmodel at the root."""
    from mlops_portal import demo

    model_dir = demo.save_model(folder / "model")
    return Path(shutil.make_archive(str(folder / "model"), "zip", root_dir=model_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    options = parser.parse_args()

    content = demo_zip(Path(tempfile.mkdtemp(prefix="registry-bench-zip-"))).read_bytes()
    with portal_server("mlops_portal_bench_registrations", workers=options.workers) as portal:
        start = threading.Barrier(options.registrations)

        def register(_):
            with portal.client(timeout=600) as client:
                start.wait()
                began = time.perf_counter()
                response = client.post("/api/v1/models/concurrent/versions/", files={"artifact": ("model.zip", content)})
                return response.status_code, response.json().get("version"), time.perf_counter() - began

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=options.registrations) as pool:
            results = list(pool.map(register, range(options.registrations)))
        wall = time.perf_counter() - began

    numbers = sorted(version for status, version, _ in results if status == 201)
    latencies = [seconds for _, _, seconds in results]
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"registrations: {options.registrations}, gunicorn workers: {options.workers}, zip: {len(content)} bytes")
    print(f"status codes: {sorted({status for status, _, _ in results})}, failures: {sum(status != 201 for status, _, _ in results)}")
    print(f"numbers distinct and consecutive 1..{options.registrations}: {numbers == list(range(1, options.registrations + 1))}")
    print(f"wall time: {wall:.2f} s, throughput: {options.registrations / wall:.1f} registrations/s")
    print(
        "latency: "
        f"p50 {percentile(latencies, 0.50) * 1000:.0f} ms, p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
