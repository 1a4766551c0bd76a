"""Benchmark: peak memory of the web process while it registers a 1 GiB artifact.

Builds a zip with the demo model's files and one incompressible file of
--size-mib MiB, stored without compression, then uploads it through
POST /api/v1/models/NAME/versions/ to gunicorn with one worker
(bench/registry_server.py). Reads the worker's peak resident set size (VmHWM in
/proc/PID/status) before and after. A body held in memory would raise the peak
by about the artifact's size; streaming keeps it near the idle figure.

Also times how soon a request that declares a body over PORTAL_MAX_UPLOAD_BYTES
gets 413, with no body sent.

Run from the repository root (needs about 3 times --size-mib of free disk)::

    .venv/bin/python bench/registry_upload_memory.py [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.registry_server import machine, portal_server  # noqa: E402

CHUNK = 8 * 1024 * 1024


def build_zip(folder: Path, size_mib: int) -> Path:
    from mlops_portal import demo

    model_dir = demo.save_model(folder / "model")
    path = folder / "big.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for file in sorted(model_dir.iterdir()):
            archive.write(file, file.name)
        with archive.open("weights.bin", "w", force_zip64=True) as sink:
            for _ in range(size_mib * 1024 * 1024 // CHUNK):
                sink.write(os.urandom(CHUNK))
    return path


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s*(\d+) kB", status).group(1)) / 1024


def seconds_to_413(url: str) -> tuple[str, float]:
    host, port = url.removeprefix("http://").split(":")
    request = (
        "POST /api/v1/models/too-big/versions/ HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: application/zip\r\nContent-Length: {3 * 1024**3}\r\n\r\n"
    )
    began = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request.encode())
        status_line = connection.recv(200).split(b"\r\n", 1)[0].decode()
    return status_line, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="registry-bench-big-"))
    try:
        archive = build_zip(folder, options.size_mib)
        size = archive.stat().st_size
        with portal_server("mlops_portal_bench_upload", workers=1) as portal:
            worker = portal.worker_pids()[0]
            with portal.client(timeout=900) as client:
                client.get("/api/v1/models/")
                idle = peak_rss_mib(worker)
                began = time.perf_counter()
                with open(archive, "rb") as handle:
                    response = client.post("/api/v1/models/big/versions/", files={"artifact": ("big.zip", handle, "application/zip")})
                upload_seconds = time.perf_counter() - began
            peak = peak_rss_mib(worker)
            status_line, reject_seconds = seconds_to_413(portal.url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"artifact: {size / 1024**2:.0f} MiB zip (stored), response {response.status_code}, version {response.json().get('version')}")
    print(f"registration took {upload_seconds:.1f} s ({size / 1024**2 / upload_seconds:.0f} MiB/s end to end)")
    print(f"worker peak RSS: {idle:.0f} MiB before the upload, {peak:.0f} MiB after (+{peak - idle:.0f} MiB)")
    print(f"declared 3 GiB body: '{status_line}' after {reject_seconds * 1000:.1f} ms, no body sent")


if __name__ == "__main__":
    main()
