"""Measure the latency the gateway adds in front of a model server, next to nginx as a weighted proxy.

    python bench/gateway.py [--backend-url URL --body-file FILE] [--duration 8] [--rounds 3]
                            [--connections 64,1] [--gateway-workers 1,2] [--write docs/benchmarks.md]

wrk sends POST requests with a 1-row JSON body to four targets: the backend directly,
nginx (an `upstream` with weights 9 and 1), and the gateway with each worker count in
--gateway-workers (a routes file with weights 90.0 and 10.0). Both proxies split
traffic between two entries for the same backend, so every target ends at the same
server. Rounds interleave the targets so that load from other processes on the machine
spreads over all of them, and the report gives the median of the rounds.

Without --backend-url the script starts bench/backend.py, a stand-in that returns a fixed
prediction without a model. Every server listens on 127.0.0.1 only. Needs `wrk` and
`nginx` (Debian packages of the same names).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
ENDPOINT = "bench"
DEFAULT_BODY = b'{"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]}}'
SECTION_PREFIX = "## Gateway: added latency, "
READING_TITLE = "### Reading"
WARMUP_SECONDS = 1


@dataclass
class Target:
    name: str
    url: str


@dataclass
class Run:
    """One wrk run: latency percentiles in milliseconds and throughput."""

    p50: float
    p90: float
    p99: float
    requests_per_second: float
    errors: int


def main() -> int:
    options = parse_options()
    for tool, package in (("wrk", "wrk"), ("nginx", "nginx")):
        if shutil.which(tool) is None:
            print(f"bench/gateway.py: {tool} not found; install it with `apt-get install -y {package}`",
                  file=sys.stderr)
            return 2

    body = DEFAULT_BODY if options.body_file is None else Path(options.body_file).read_bytes()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    processes: list[subprocess.Popen] = []

    try:
        backend_url = options.backend_url
        if backend_url is None:
            port = free_port()
            processes.append(start_process(
                [sys.executable, str(REPOSITORY_ROOT / "bench" / "backend.py"), "--port", str(port)],
                workdir / "backend.log",
            ))
            backend_url = f"http://127.0.0.1:{port}"
        wait_for_http(backend_url + "/invocations", body)

        targets = [Target("backend directly", backend_url + "/invocations")]

        nginx_port = free_port()
        processes.append(start_nginx(workdir, backend_url, nginx_port, options.nginx_workers))
        targets.append(Target(f"nginx, {options.nginx_workers} worker", f"http://127.0.0.1:{nginx_port}"
                              f"/endpoints/{ENDPOINT}/invocations"))

        routes_file = workdir / "routes.json"
        routes_file.write_bytes(orjson.dumps(route_table(backend_url)))
        for workers in options.gateway_workers:
            port = free_port()
            processes.append(start_process(
                [sys.executable, "-m", "gateway", "--port", str(port), "--workers", str(workers),
                 "--routes-file", str(routes_file), "--log-level", "warning"],
                workdir / f"gateway-{workers}.log", cwd=REPOSITORY_ROOT,
            ))
            url = f"http://127.0.0.1:{port}/endpoints/{ENDPOINT}/invocations"
            targets.append(Target(f"gateway, {workers} worker{'s' if workers > 1 else ''}", url))

        for target in targets[1:]:
            wait_for_http(target.url, body)

        script = workdir / "post.lua"
        script.write_text(lua_script(body))

        load_before = os.getloadavg()
        results = measure(targets, options, script)
        load_after = os.getloadavg()
    finally:
        for process in reversed(processes):
            stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)

    if options.backend_url:
        backend_kind = options.backend_note or f"the server at {options.backend_url}"
    else:
        backend_kind = "bench/backend.py, a uvicorn stand-in that returns a fixed prediction without a model"
    section = render_section(options, targets, results, backend_kind, load_before, load_after, body)
    print(section)
    if options.write:
        write_section(Path(options.write), section)
        print(f"wrote {options.write}", file=sys.stderr)
    return 0


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend-url", help="base URL of a running model server; default: start bench/backend.py")
    parser.add_argument("--body-file", help="request body for POST /invocations; default: a 1-row dataframe_split")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets; the median is reported")
    parser.add_argument("--connections", default="64,1", help="comma-separated wrk connection counts (default 64,1)")
    parser.add_argument("--gateway-workers", default="1,2", help="comma-separated gateway worker counts (default 1,2)")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker processes (default 1)")
    parser.add_argument("--backend-note", default="",
                        help="what the backend at --backend-url is, for the report (version, model)")
    parser.add_argument("--label", help="backend name for the section title; default: stand-in backend, "
                                        "or model server with --backend-url")
    parser.add_argument("--write", metavar="PATH", help="replace the section with the same title in this Markdown file")
    options = parser.parse_args()

    try:
        options.connections = [int(value) for value in options.connections.split(",")]
        options.gateway_workers = [int(value) for value in options.gateway_workers.split(",")]
    except ValueError:
        parser.error("--connections and --gateway-workers expect comma-separated integers such as 64,1")
    if options.backend_url is not None and not options.backend_url.startswith("http://127."):
        parser.error("--backend-url must be a server on this machine, such as http://127.0.0.1:8001")
    options.backend_url = options.backend_url.rstrip("/") if options.backend_url else None
    if options.label is None:
        options.label = "model server" if options.backend_url else "stand-in backend"
    return options


def measure(targets: list[Target], options: argparse.Namespace, script: Path) -> dict[tuple[str, int], list[Run]]:
    """Run wrk on every target and connection count, interleaved over the rounds."""
    results: dict[tuple[str, int], list[Run]] = {}
    for round_number in range(1, options.rounds + 1):
        for connections in options.connections:
            for target in targets:
                threads = min(2, connections)
                run_wrk(target.url, script, threads, connections, WARMUP_SECONDS)
                run = run_wrk(target.url, script, threads, connections, options.duration)
                results.setdefault((target.name, connections), []).append(run)
                print(f"round {round_number}, {connections} connections, {target.name}: "
                      f"p50 {run.p50:.3f} ms, {run.requests_per_second:,.0f} requests/s, {run.errors} errors",
                      file=sys.stderr)
    return results


def run_wrk(url: str, script: Path, threads: int, connections: int, duration: int) -> Run:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> Run:
    """Read the latency distribution, requests/s and error counts from wrk's text output."""
    percentiles = {}
    for percent, value, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE):
        percentiles[percent] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    throughput = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if throughput is None or len(percentiles) != 3:
        raise RuntimeError(f"unexpected wrk output:\n{output}")

    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return Run(percentiles["50"], percentiles["90"], percentiles["99"], float(throughput.group(1)), errors)


def route_table(backend_url: str) -> dict:
    """Two entries for the same backend with weights 90.0 and 10.0, as in a canary release."""
    backends = []
    for server_id, weight, role in ((1, 90.0, "stable"), (2, 10.0, "candidate")):
        backends.append({
            "key": f"s{server_id}", "server_id": server_id, "model": "bench", "version": server_id,
            "url": backend_url, "model_name": ENDPOINT, "weight": weight, "role": role,
        })
    return {"revision": 1, "endpoints": {ENDPOINT: {"backends": backends}}}


def start_nginx(workdir: Path, backend_url: str, port: int, workers: int) -> subprocess.Popen:
    """Start nginx in the foreground with a configuration in `workdir`, on 127.0.0.1 only."""
    backend_address = backend_url.removeprefix("http://").split("/", 1)[0]
    nginx_dir = workdir / "nginx"
    nginx_dir.mkdir()
    config = f"""
worker_processes {workers};
daemon off;
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {nginx_dir}/client_body;
    proxy_temp_path {nginx_dir}/proxy;
    fastcgi_temp_path {nginx_dir}/fastcgi;
    uwsgi_temp_path {nginx_dir}/uwsgi;
    scgi_temp_path {nginx_dir}/scgi;
    upstream model_servers {{
        server {backend_address} weight=9;
        server {backend_address} weight=1;
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /endpoints/{ENDPOINT}/invocations {{
            proxy_pass http://model_servers/invocations;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    (nginx_dir / "nginx.conf").write_text(config)
    return start_process(
        ["nginx", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"), "-e", str(nginx_dir / "error.log")],
        workdir / "nginx.log",
    )


def lua_script(body: bytes) -> str:
    escaped = body.decode().replace("\\", "\\\\").replace('"', '\\"')
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def start_process(command: list[str], log_path: Path, cwd: Path | None = None) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)


def stop_process(process: subprocess.Popen) -> None:
    """Stop one process that this script started, by its PID."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_http(url: str, body: bytes, timeout: float = 20.0) -> None:
    """Wait until a POST to `url` returns 200, or raise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError) as error:
            last_error = error
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not return 200 within {timeout:g} s: {last_error}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine_description() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return f"`nproc` {os.cpu_count()}, {cpu}, {memory_kib / 1024 / 1024:.0f} GiB RAM, Linux {platform.release()}"


def tool_versions() -> str:
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
    import uvicorn
    return f"Python {platform.python_version()}, uvicorn {uvicorn.__version__}, nginx {nginx}, wrk {wrk}"


def render_section(
    options: argparse.Namespace,
    targets: list[Target],
    results: dict[tuple[str, int], list[Run]],
    backend_kind: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    body: bytes,
) -> str:
    """Render the Markdown section: how the numbers were made, then one table per connection count."""
    command = shlex.join(["python", "bench/gateway.py", *sys.argv[1:]])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION_PREFIX + options.label,
        "",
        f"- Command: `{command.strip()}`",
        f"- Date: {date}",
        f"- Machine: {machine_description()}",
        f"- Software: {tool_versions()}",
        f"- Backend: {backend_kind}, 1 process.",
        f"- Request: POST with a {len(body)}-byte JSON body, one row: `{body.decode()}`",
        f"- Each figure is the median of {options.rounds} rounds of {options.duration} s, after 1 s of warm-up. "
        "\"Added\" is the target's median p50 minus the direct call's median p50.",
        f"- Load average (1 min) before and after: {load_before[0]:.2f} and {load_after[0]:.2f}. "
        "wrk, the backend and the proxy share the same cores, so with 64 connections every process "
        "competes for CPU, and the latency includes time spent waiting for it.",
        "",
    ]

    direct_name = targets[0].name
    for connections in options.connections:
        direct_p50 = statistics.median(run.p50 for run in results[(direct_name, connections)])
        lines += [
            f"{connections} concurrent connection{'s' if connections > 1 else ''} "
            f"(wrk -t{min(2, connections)} -c{connections}):",
            "",
            "| target | p50 ms | added p50 ms | p90 ms | p99 ms | requests/s | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for target in targets:
            runs = results[(target.name, connections)]
            p50 = statistics.median(run.p50 for run in runs)
            added = "" if target.name == direct_name else f"{p50 - direct_p50:+.3f}"
            lines.append(
                f"| {target.name} | {p50:.3f} | {added} | {statistics.median(run.p90 for run in runs):.3f} "
                f"| {statistics.median(run.p99 for run in runs):.3f} "
                f"| {statistics.median(run.requests_per_second for run in runs):,.0f} "
                f"| {sum(run.errors for run in runs)} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the section with the same title in `path`, or append it, and keep the rest of the file.

    A "### Reading" subsection of the old section is kept, because a person writes it.
    Reread it after a new run, since the figures it discusses have changed.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    title = section.split("\n", 1)[0]
    start = text.find(title + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
        path.write_text(text)
        return

    end = text.find("\n## ", start + len(title))
    old_section = text[start:] if end == -1 else text[start:end]
    rest = "" if end == -1 else text[end:]

    reading = ""
    reading_start = old_section.find(READING_TITLE)
    if reading_start != -1:
        reading = "\n" + old_section[reading_start:].rstrip("\n") + "\n"

    text = text[:start] + section.rstrip("\n") + "\n" + reading + rest
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
