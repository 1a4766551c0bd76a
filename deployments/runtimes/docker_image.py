"""Build context, inputs digest and streamed build of one model image.

The image for a model version is named after a digest of everything that goes
into it, so the same inputs always map to the same tag and an existing image
is reused instead of rebuilt. No Django imports: the Docker runtime uses this
module from Celery workers and from plain test processes alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import queue
import re
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .base import LogFn, RuntimeFailure, ServerSpec

logger = logging.getLogger(__name__)

LABEL_PREFIX = "mlops-portal"
LABEL_INSTANCE = f"{LABEL_PREFIX}.instance"
LABEL_MODEL = f"{LABEL_PREFIX}.model"
LABEL_VERSION = f"{LABEL_PREFIX}.version"
LABEL_INPUTS_DIGEST = f"{LABEL_PREFIX}.inputs-digest"

SERVER_PORT = 8080
SERVER_USER_ID = 10001

# Lines of build output kept for the failure message of a failed build.
FAILURE_TAIL_LINES = 30

# Podman prints "STEP 3/9: RUN ...", Docker's classic builder "Step 3/9 : RUN ...".
STEP_PATTERN = re.compile(r"^(?:STEP|Step) (\d+/\d+)\s?: (.*)$")

DOCKERFILE_TEMPLATE = """\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}

ENV PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_ROOT_USER_ACTION=ignore \\
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN useradd --system --uid {user_id} --user-group --create-home --home-dir /home/model-server model-server \\
 && python3 -m venv /opt/venv

# The requirements are copied, not bind-mounted, so that a change in them
# invalidates the cached venv layer below.
COPY requirements/ /opt/model-server/requirements/
RUN {mounts}\\
    pip install --no-cache-dir {pip_sources} \\
        -r /opt/model-server/requirements/model.txt \\
        -r /opt/model-server/requirements/server.txt

COPY server/ /opt/model-server/
RUN python -m compileall -q /opt/model-server/model_server
COPY model/ /model/

USER model-server
WORKDIR /opt/model-server
EXPOSE {port}
# uvicorn and the Python default handler both stop cleanly on SIGINT, even as
# PID 1, where the kernel drops signals that have no handler.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/v2/health/ready', timeout=2)"]
ENTRYPOINT ["python", "-m", "model_server", "--model-dir", "/model", "--host", "0.0.0.0", "--port", "{port}"]
"""


@dataclasses.dataclass(frozen=True)
class ImageSources:
    """Package sources and server code that every image of one runtime is built from."""

    base_image: str
    server_package: Path
    server_requirements: Path
    wheelhouse: Path | None = None
    index_url: str | None = None
    ca_bundle: Path | None = None


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """The files of one image build and the digest that names the image."""

    dockerfile: str
    model_requirements: list[str]
    server_requirements: list[str]
    files: dict[str, Path]
    digest: str
    tag: str
    labels: dict[str, str]
    base_image_id: str


def slugify(value: str) -> str:
    """Turn a model or instance name into a valid image repository component."""
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    return slug or "model"


def read_requirement_lines(path: Path) -> list[str]:
    """Return the requirement lines of a requirements file, without comments."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def merge_requirements(model_lines: Iterable[str], server_lines: Iterable[str], model: str) -> tuple[list[str], list[str]]:
    """Split the install into the model's pins and the server's remaining pins.

    The model's pins win for every package both name, because a pickled or
    skops model needs the library versions it was saved with. MLflow is the
    exception: the server code is written against the server's mlflow-skinny
    pin, so the model's `mlflow` or `mlflow-skinny` line is dropped. pip
    options (`-r`, `--index-url` and the like) are dropped as well, because
    the image build chooses its own package sources.
    """
    kept_model_lines = []
    model_names = set()
    for line in model_lines:
        if line.startswith("-"):
            logger.warning("model %s: dropping pip option %r from its requirements.txt", model, line)
            continue

        try:
            name = canonicalize_name(Requirement(line).name)
        except InvalidRequirement as error:
            raise RuntimeFailure(f"Invalid line {line!r} in the requirements.txt of model {model}: {error}") from error

        if name in ("mlflow", "mlflow-skinny"):
            logger.info("model %s: replacing %r with the server's mlflow-skinny pin", model, line)
            continue

        kept_model_lines.append(line)
        model_names.add(name)

    kept_server_lines = [line for line in server_lines if canonicalize_name(Requirement(line).name) not in model_names]
    return kept_model_lines, kept_server_lines


def hash_tree(root: Path) -> str:
    """Hash the relative paths and contents of the files under root."""
    digest = hashlib.sha256()
    for path in sorted(iter_tree(root)):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def iter_tree(root: Path) -> Iterable[Path]:
    """Yield the files under root, skipping Python bytecode caches."""
    for path in root.rglob("*"):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.is_file():
            yield path


def render_dockerfile(sources: ImageSources) -> str:
    """Render the Dockerfile; the package sources decide the pip install flags."""
    mounts = []
    pip_sources = []
    if sources.wheelhouse is not None:
        mounts.append("--mount=type=bind,source=wheelhouse,target=/tmp/wheelhouse")
        pip_sources.append("--find-links /tmp/wheelhouse")
    if sources.index_url is not None:
        pip_sources.append(f"--index-url {sources.index_url}")
        if sources.ca_bundle is not None:
            mounts.append("--mount=type=bind,source=ca-bundle.crt,target=/tmp/ca-bundle.crt")
            pip_sources.append("--cert /tmp/ca-bundle.crt")
    else:
        pip_sources.insert(0, "--no-index")

    return DOCKERFILE_TEMPLATE.format(
        user_id=SERVER_USER_ID,
        port=SERVER_PORT,
        mounts="".join(f"{mount} \\\n    " for mount in mounts),
        pip_sources=" ".join(pip_sources),
    )


def create_build_context(spec: ServerSpec, sources: ImageSources, base_image_id: str, instance: str) -> BuildContext:
    """Collect the files of the image for spec and compute its tag.

    The digest covers the artifact sha256, both requirement lists, the base
    image id, the server code and the Dockerfile. NOTE: the wheelhouse is not
    part of it, so when the wheelhouse changes, an unpinned transitive
    dependency may differ between an old image and a rebuild of the same tag.
    """
    if sources.wheelhouse is None and sources.index_url is None:
        raise RuntimeFailure("No package source for model images: configure a wheelhouse folder, an index URL or both.")

    model_dir = Path(spec.model_dir)
    if not (model_dir / "MLmodel").is_file():
        raise RuntimeFailure(f"{model_dir} is not an MLflow model folder: it has no MLmodel file.")

    model_requirements_file = model_dir / "requirements.txt"
    model_lines = read_requirement_lines(model_requirements_file) if model_requirements_file.is_file() else []
    model_requirements, server_requirements = merge_requirements(
        model_lines, read_requirement_lines(sources.server_requirements), spec.model
    )

    dockerfile = render_dockerfile(sources)
    artifact_sha256 = spec.artifact_sha256 or hash_tree(model_dir)

    digest = hashlib.sha256()
    for part in (
        artifact_sha256,
        "\n".join(model_requirements),
        "\n".join(server_requirements),
        base_image_id,
        hash_tree(sources.server_package),
        dockerfile,
    ):
        digest.update(part.encode() + b"\0")
    inputs_digest = digest.hexdigest()

    files = {"model": model_dir, "server/model_server": sources.server_package}
    if sources.wheelhouse is not None:
        files["wheelhouse"] = sources.wheelhouse
    if sources.index_url is not None and sources.ca_bundle is not None:
        files["ca-bundle.crt"] = sources.ca_bundle

    tag = f"localhost/mlops-portal-{slugify(instance)}/{slugify(spec.model)}:v{spec.version}-{inputs_digest[:16]}"
    labels = {
        LABEL_INSTANCE: instance,
        LABEL_MODEL: spec.model,
        LABEL_VERSION: str(spec.version),
        LABEL_INPUTS_DIGEST: inputs_digest,
    }
    return BuildContext(
        dockerfile=dockerfile,
        model_requirements=model_requirements,
        server_requirements=server_requirements,
        files=files,
        digest=inputs_digest,
        tag=tag,
        labels=labels,
        base_image_id=base_image_id,
    )


def write_context_tar(context: BuildContext, fileobj: IO[bytes]) -> None:
    """Write the build context as the tar stream the build API expects."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name.split("/") or info.name.endswith(".pyc"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        add_bytes(tar, "Dockerfile", context.dockerfile.encode())
        add_bytes(tar, "requirements/model.txt", "".join(f"{line}\n" for line in context.model_requirements).encode())
        add_bytes(tar, "requirements/server.txt", "".join(f"{line}\n" for line in context.server_requirements).encode())
        for arcname, source in context.files.items():
            tar.add(source, arcname=arcname, filter=as_root)


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, fileobj=io.BytesIO(data))


class BuildLog:
    """Split the build stream into lines, pass them on and remember the current step."""

    def __init__(self, log: LogFn):
        self._log = log
        self._partial = ""
        self.step = "the upload of the build context"
        self.tail: list[str] = []

    def feed(self, text: str) -> None:
        text = self._partial + text
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = ""

    def _emit(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return

        match = STEP_PATTERN.match(line)
        if match:
            instruction = " ".join(match.group(2).split())
            if len(instruction) > 100:
                instruction = instruction[:100] + "..."
            self.step = f"step {match.group(1)} ({instruction})"
            self.tail = []

        self.tail.append(line)
        del self.tail[:-FAILURE_TAIL_LINES]
        self._log(line)


_END_OF_STREAM = object()


def build_image(
    api_kwargs: dict[str, Any],
    context: BuildContext,
    base_image: str,
    timeout: float,
    log: LogFn,
    layer_cache: bool = True,
) -> None:
    """Build and tag the image for context, passing each output line to log.

    Raises RuntimeFailure naming the failing step and its last output lines
    when the build fails, and when it takes longer than timeout seconds.
    """
    api = docker.APIClient(**api_kwargs)

    # The build response is captured through a requests hook, so that a
    # timeout can shut its socket down and unblock the reading thread. A
    # response that arrives after the timeout (the context upload took all
    # the time) is shut down as soon as it arrives.
    responses = []
    cancelled = threading.Event()

    def capture_response(response: Any, *args: Any, **kwargs: Any) -> None:
        responses.append(response)
        if cancelled.is_set():
            shut_down(response)

    api.hooks["response"].append(capture_response)

    build_log = BuildLog(log)
    chunks: queue.Queue[Any] = queue.Queue()

    def read_stream(tar_file: IO[bytes]) -> None:
        try:
            # timeout=None: no read timeout, because a quiet step (pip
            # installing large wheels) can print nothing for minutes; the
            # deadline below limits the whole build instead.
            stream = api.build(
                fileobj=tar_file,
                custom_context=True,
                tag=context.tag,
                labels=context.labels,
                buildargs={"BASE_IMAGE": base_image},
                nocache=not layer_cache,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=None,
            )
            for chunk in stream:
                chunks.put(chunk)
        except Exception as error:  # handed to the waiting thread, which raises it
            chunks.put(error)
        finally:
            chunks.put(_END_OF_STREAM)

    with tempfile.TemporaryFile() as tar_file:
        write_context_tar(context, tar_file)
        tar_file.seek(0)

        reader = threading.Thread(target=read_stream, args=(tar_file,), name=f"build {context.tag}", daemon=True)
        deadline = time.monotonic() + timeout
        reader.start()

        try:
            error_message = consume_build_stream(chunks, build_log, deadline)
        except TimeoutError:
            cancelled.set()
            for response in list(responses):
                shut_down(response)
            reader.join(timeout=10)
            build_log.flush()
            logger.error("image build %s timed out after %g s at %s", context.tag, timeout, build_log.step)
            raise RuntimeFailure(
                f"The image build timed out after {timeout:g} s at {build_log.step}. "
                f"Last output:\n" + "\n".join(build_log.tail)
            ) from None
        finally:
            api.close()

    build_log.flush()
    if error_message is not None:
        logger.error("image build %s failed at %s: %s", context.tag, build_log.step, error_message)
        raise RuntimeFailure(
            f"The image build failed at {build_log.step}: {error_message}\nLast output:\n" + "\n".join(build_log.tail)
        )


def consume_build_stream(chunks: queue.Queue[Any], build_log: BuildLog, deadline: float) -> str | None:
    """Feed the build stream to build_log until it ends; return the build's error message, if any."""
    error_message = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError

        try:
            chunk = chunks.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None

        if chunk is _END_OF_STREAM:
            return error_message
        if isinstance(chunk, docker.errors.APIError):
            return f"the engine rejected the build: {chunk.explanation or chunk}"
        if isinstance(chunk, Exception):
            return f"reading the build output failed: {chunk}"

        if "stream" in chunk:
            build_log.feed(chunk["stream"])
        if "error" in chunk:
            error_message = chunk.get("errorDetail", {}).get("message") or chunk["error"]


def shut_down(response: Any) -> None:
    """Shut the socket of a streamed response down, ending the build on the engine too."""
    try:
        response.raw.shutdown()
    except (AttributeError, OSError, RuntimeError, ValueError) as error:
        logger.warning("could not shut down the build connection: %s", error)
