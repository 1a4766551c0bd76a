"""Measure model image builds and container start-up with the Docker runtime.

Builds the image of the demo model (StandardScaler + LogisticRegression on
scikit-learn's breast cancer data, saved with mlflow.sklearn) three ways:

- cold: every layer built, with the layer cache off (the wheelhouse is already
  on the host, so no download is timed);
- warm: a new model version whose requirements match, so only the layers after
  the venv are built;
- cache hit: the same inputs again, so prepare() finds the image and builds nothing.

Then it starts the image as a container several times and times start() until
/v2/health/ready returns 200, and stop(). It prints a Markdown section for
docs/benchmarks.md and writes the figures as JSON to bench/results/.

Needs a running engine and the wheelhouse; from the repository root:

    export "$(.ci/container-engine)" "$(.ci/wheelhouse)"
    .venv/bin/python bench/container_image.py [--starts 5]

Every image and container it creates carries a fresh instance label and is
removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from deployments.runtimes.base import ServerSpec  # noqa: E402
from deployments.runtimes.docker import DockerRuntime  # noqa: E402
from deployments.runtimes.docker_image import hash_tree  # noqa: E402

READY_TIMEOUT_SECONDS = 120


def save_demo_model(directory: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)
    model_dir = directory / "model"
    mlflow.sklearn.save_model(
        pipeline,
        model_dir,
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(3),
    )
    return model_dir


def machine() -> dict[str, str]:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break

    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
            break

    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip(),
        "cpu": cpu_model,
        "ram_gib": f"{mem_kib / 1024 / 1024:.1f}",
        "kernel": platform.release(),
        "load_average_1min": f"{os.getloadavg()[0]:.1f}",
    }


def timed_prepare(runtime: DockerRuntime, spec: ServerSpec) -> tuple[float, dict]:
    started = time.monotonic()
    prepared = runtime.prepare(spec, lambda line: None)
    return time.monotonic() - started, prepared


def time_start_to_ready(runtime: DockerRuntime, spec: ServerSpec, prepared: dict) -> tuple[float, float]:
    """Start a container, wait until it is ready, stop it; return both durations in seconds."""
    started = time.monotonic()
    handle = runtime.start(spec, prepared)
    while not runtime.health(handle).ready:
        if time.monotonic() - started > READY_TIMEOUT_SECONDS:
            raise SystemExit(f"server not ready after {READY_TIMEOUT_SECONDS} s:\n{runtime.logs(handle)}")
        time.sleep(0.05)
    ready_seconds = time.monotonic() - started

    started = time.monotonic()
    runtime.stop(handle)
    return ready_seconds, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--starts", type=int, default=5, help="container starts to time (default 5)")
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=os.environ.get("MLOPS_PORTAL_WHEELHOUSE", Path.home() / ".cache" / "mlops-portal" / "wheelhouse"),
        help="wheelhouse folder (default: $MLOPS_PORTAL_WHEELHOUSE or ~/.cache/mlops-portal/wheelhouse)",
    )
    args = parser.parse_args()

    machine_info = machine()
    instance = f"bench-{uuid.uuid4().hex[:8]}"
    options = {"wheelhouse": args.wheelhouse, "instance": instance}
    cold_runtime = DockerRuntime(layer_cache=False, **options)
    runtime = DockerRuntime(**options)

    try:
        with tempfile.TemporaryDirectory() as directory:
            model_dir = save_demo_model(Path(directory))
            sha256 = hash_tree(model_dir)

            def spec(version: int) -> ServerSpec:
                return ServerSpec(
                    server_id=version, endpoint="breast-cancer", model="breast-cancer-classifier", version=version,
                    model_dir=model_dir, artifact_sha256=sha256, model_name="breast-cancer", memory_mb=1024, cpus=1.0,
                )

            cold_seconds, prepared = timed_prepare(cold_runtime, spec(1))
            warm_seconds, _ = timed_prepare(runtime, spec(2))
            hit_seconds, hit = timed_prepare(runtime, spec(1))
            assert prepared["built"] and not hit["built"], "expected a build, then a cache hit"

            engine = runtime.client
            image_bytes = engine.images.get(prepared["image"]).attrs["Size"]
            base_bytes = engine.images.get(runtime.sources.base_image).attrs["Size"]
            engine_version = engine.version()

            start_times = [time_start_to_ready(runtime, spec(1), prepared) for _ in range(args.starts)]
    finally:
        runtime.remove_all(images=True)
        runtime.close()
        cold_runtime.close()

    ready = [ready for ready, _ in start_times]
    stops = [stop for _, stop in start_times]
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_info,
        "engine": f"{engine_version.get('Components', [{}])[0].get('Name', 'engine')} {engine_version['Version']}",
        "cold_build_seconds": round(cold_seconds, 1),
        "warm_build_seconds": round(warm_seconds, 1),
        "cache_hit_seconds": round(hit_seconds, 2),
        "image_mb": round(image_bytes / 1e6),
        "base_image_mb": round(base_bytes / 1e6),
        "ready_seconds": [round(value, 2) for value in ready],
        "stop_seconds": [round(value, 2) for value in stops],
    }

    results_dir = REPOSITORY_ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"container_image-{results['date']}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(render_markdown(results))


def render_markdown(results: dict) -> str:
    machine_info = results["machine"]
    ready = results["ready_seconds"]
    stops = results["stop_seconds"]
    return "\n".join([
        "## Model images and containers (Docker runtime)",
        "",
        "Command: `.venv/bin/python bench/container_image.py`",
        f"Machine: {machine_info['nproc']} cores ({machine_info['cpu']}), {machine_info['ram_gib']} GiB RAM, "
        f"Linux {machine_info['kernel']}, {results['engine']}, load average {machine_info['load_average_1min']} "
        f"at the start. Date: {results['date']}.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| cold build (layer cache off, wheelhouse on the host) | {results['cold_build_seconds']} s |",
        f"| warm build (new version, same requirements) | {results['warm_build_seconds']} s |",
        f"| prepare() with the image already built | {results['cache_hit_seconds']} s |",
        f"| image size (base image alone) | {results['image_mb']} MB ({results['base_image_mb']} MB) |",
        f"| start() to /v2/health/ready = 200, median of {len(ready)} (min-max) | "
        f"{statistics.median(ready):.2f} s ({min(ready):.2f}-{max(ready):.2f}) |",
        f"| stop() and remove, median of {len(stops)} | {statistics.median(stops):.2f} s |",
    ])


if __name__ == "__main__":
    main()
