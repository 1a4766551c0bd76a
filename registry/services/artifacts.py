"""Checking, storing and unpacking zipped MLflow model directories.

An uploaded zip is untrusted: entries may try to escape the target folder
(`../`, absolute paths, symbolic links) or expand far beyond their size. Every
check here runs before anything is stored, and unpacking writes to a temporary
folder that is renamed into place only when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import yaml
from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction

from mlops_portal.errors import InvalidInput, NotFound
from registry.models import Artifact

logger = logging.getLogger("registry.artifacts")

MAX_ENTRIES = 100_000
# An archive may expand to at most this multiple of the upload limit.
MAX_EXPANSION = 4
CHUNK_SIZE = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ModelArchive:
    """The MLmodel contents and saved examples read from a model archive."""

    model_root: str
    mlmodel: dict
    input_example: dict | list | None
    serving_input_example: dict | None


def inspect_model_zip(path: Path, field: str = "artifact") -> ModelArchive:
    """Check a zip of an MLflow model directory and read its MLmodel file.

    Raises InvalidInput naming `field` when the file is not a zip, an entry
    escapes the archive's folder, the archive would expand too far, or no
    single MLmodel file is found at the root or in one top-level folder.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(
            f"The file is not a valid zip archive ({exc}). Upload a zip of an MLflow model directory.",
            field=field,
        ) from None

    with archive:
        entries = archive.infolist()
        _check_entries(entries, field)
        model_root = _find_model_root(entries, field)
        mlmodel = _read_yaml(archive, model_root + "MLmodel", field)
        input_example, serving_example = _read_examples(archive, model_root, mlmodel)

    return ModelArchive(
        model_root=model_root,
        mlmodel=mlmodel,
        input_example=input_example,
        serving_input_example=serving_example,
    )


def _check_entries(entries: list[zipfile.ZipInfo], field: str) -> None:
    if len(entries) > MAX_ENTRIES:
        raise InvalidInput(f"The archive has {len(entries)} entries; at most {MAX_ENTRIES} are allowed.", field=field)

    total = 0
    for entry in entries:
        name = entry.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise InvalidInput(
                f"Archive entry {name!r} points outside the model folder; "
                "zip the model directory with relative paths only.",
                field=field,
            )
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise InvalidInput(
                f"Archive entry {name!r} is a symbolic link; replace links with the files they point to.",
                field=field,
            )
        total += entry.file_size

    limit = settings.PORTAL_MAX_UPLOAD_BYTES * MAX_EXPANSION
    if total > limit:
        raise InvalidInput(
            f"The archive expands to {total} bytes, more than the limit of {limit} bytes.",
            field=field,
        )


def _find_model_root(entries: list[zipfile.ZipInfo], field: str) -> str:
    """Return "" or "folder/" for the one MLmodel at the root or one level down."""
    roots = []
    too_deep = []
    for entry in entries:
        parts = PurePosixPath(entry.filename).parts
        if not parts or parts[-1] != "MLmodel" or entry.is_dir():
            continue
        if len(parts) <= 2:
            roots.append("" if len(parts) == 1 else parts[0] + "/")
        else:
            too_deep.append(entry.filename)

    if not roots and too_deep:
        shallowest = min(too_deep, key=lambda name: (name.count("/"), name))
        raise InvalidInput(
            f"The archive has an MLmodel file at {shallowest}, but it must be at the root of the archive "
            "or inside one top-level folder. Zip the folder that contains MLmodel, not a folder above it.",
            field=field,
        )
    if not roots:
        raise InvalidInput(
            "The archive has no MLmodel file. Zip the folder that mlflow.<flavor>.save_model wrote "
            "(it contains MLmodel), with MLmodel at the root or inside one top-level folder.",
            field=field,
        )
    if len(roots) > 1 and "" not in roots:
        raise InvalidInput(
            f"The archive contains several MLmodel files (in {', '.join(sorted(roots))}); upload one model per archive.",
            field=field,
        )
    return "" if "" in roots else roots[0]


def _read_yaml(archive: zipfile.ZipFile, name: str, field: str) -> dict:
    try:
        content = yaml.safe_load(archive.read(name))
    except (yaml.YAMLError, zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The MLmodel file cannot be read: {exc}.", field=field) from None

    if not isinstance(content, dict) or not isinstance(content.get("flavors"), dict):
        raise InvalidInput("The MLmodel file has no flavors section; it is not an MLflow model.", field=field)
    return content


def _read_examples(archive: zipfile.ZipFile, model_root: str, mlmodel: dict):
    """Read the input example and the serving payload MLflow saved beside the model, if any."""
    info = mlmodel.get("saved_input_example_info") or {}
    names = set(archive.namelist())

    def load(relative: str | None):
        if not relative or model_root + relative not in names:
            return None
        try:
            return json.loads(archive.read(model_root + relative))
        except (ValueError, zipfile.BadZipFile, OSError):
            logger.warning("Ignoring unreadable input example %s", relative)
            return None

    return load(info.get("artifact_path")), load(info.get("serving_input_path"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def store_artifact(path: Path, model_root: str) -> Artifact:
    """Store a checked zip once per digest and return its Artifact row.

    Runs inside the caller's transaction. If that transaction rolls back, the
    file stays in storage without a row; NOTE: nothing sweeps such orphans yet.
    """
    digest = sha256_of(path)
    # The lock keeps a concurrent deletion of an unused artifact from removing
    # the row between this lookup and the new version's reference to it.
    existing = Artifact.objects.select_for_update().filter(sha256=digest).first()
    if existing is not None:
        return existing

    artifact = Artifact(sha256=digest, size=path.stat().st_size, model_root=model_root)
    with open(path, "rb") as handle:
        artifact.file.save(f"{digest}.zip", File(handle), save=False)

    try:
        with transaction.atomic():
            artifact.save()
    except IntegrityError:
        # Another registration stored the same content first; both rows would be equal.
        artifact.file.delete(save=False)
        return Artifact.objects.get(sha256=digest)

    logger.info("Stored artifact %s (%d bytes)", digest, artifact.size)
    return artifact


def unpack_artifact(artifact: Artifact) -> Path:
    """Return a folder with the model's files (MLmodel at its root), unpacking it once per digest."""
    cache = Path(settings.PORTAL_MODEL_CACHE_DIR)
    target = cache / artifact.sha256
    if (target / "MLmodel").exists():
        return target

    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{artifact.sha256[:12]}-", dir=cache))
    try:
        with artifact.file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
            _extract(archive, artifact.model_root, staging)
        try:
            os.rename(staging, target)
        except OSError:
            # Another worker finished the same unpacking first.
            if not (target / "MLmodel").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    logger.info("Unpacked artifact %s into %s", artifact.sha256, target)
    return target


def _extract(archive: zipfile.ZipFile, model_root: str, target: Path) -> None:
    root = target.resolve()
    for entry in archive.infolist():
        if not entry.filename.startswith(model_root) or entry.is_dir():
            continue

        relative = entry.filename[len(model_root):]
        destination = (root / relative).resolve()
        if root not in destination.parents:
            raise InvalidInput(f"Archive entry {entry.filename!r} points outside the model folder.", field="artifact")

        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(entry) as source, open(destination, "wb") as sink:
            shutil.copyfileobj(source, sink, CHUNK_SIZE)


class _EntryReader(io.RawIOBase):
    """A readable archive entry that closes the archive's storage file when closed."""

    def __init__(self, entry, storage_file):
        self._entry = entry
        self._storage_file = storage_file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._entry.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._entry.close()
            self._storage_file.close()
        super().close()


def clean_member_path(path: str, field: str = "path") -> str:
    """Return a path relative to the model folder, or raise InvalidInput when it could leave it.

    Rejected: empty paths, absolute paths, drive letters, backslashes, NUL and
    '..' segments. Paths arrive here already percent-decoded once by the server,
    so an encoded form such as %2e%2e%2f is checked as '../'. A second level of
    encoding (%252e) stays literal text and cannot name a parent folder.
    """
    if not path or "\x00" in path or "\\" in path or path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidInput(f"The file path {path!r} is not a relative path inside the model; use a path such as 'MLmodel'.", field=field)

    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidInput(f"The file path {path!r} leads outside the model folder; use a path such as 'MLmodel'.", field=field)
    return "/".join(parts)


def open_stored(artifact: Artifact):
    """Open the artifact's zip in storage; raise NotFound with the digest when the file is gone."""
    try:
        return artifact.file.open("rb")
    except OSError as exc:
        logger.error("Artifact %s is missing from storage at %s: %s", artifact.sha256, artifact.file.name, exc)
        raise NotFound(
            f"The stored file of artifact {artifact.sha256} is missing from artifact storage; "
            "restore it from a backup or register the version again.",
            field="version",
        ) from None


def open_model_file(artifact: Artifact, path: str, field: str = "path") -> tuple[io.RawIOBase, int, str]:
    """Open one file of the model for reading; return (readable, size in bytes, member path).

    The file is read from the stored zip, never from a path on disk, so no name
    can reach outside the artifact. Symbolic links were rejected at upload.
    """
    member = artifact.model_root + clean_member_path(path, field)
    storage_file = open_stored(artifact)
    try:
        archive = zipfile.ZipFile(storage_file)
        info = archive.getinfo(member)
        if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
            raise KeyError(member)
        return _EntryReader(archive.open(info), storage_file), info.file_size, member
    except KeyError:
        storage_file.close()
        raise NotFound(f"The model has no file {path!r}; the version's file list names the files it has.", field=field) from None
    except (zipfile.BadZipFile, OSError):
        storage_file.close()
        raise


def list_model_files(artifact: Artifact) -> list[dict]:
    """List the model's files (path relative to the folder with MLmodel, and size)."""
    with open_stored(artifact) as storage_file, zipfile.ZipFile(storage_file) as archive:
        return [
            {"path": info.filename[len(artifact.model_root):], "size": info.file_size}
            for info in archive.infolist()
            if info.filename.startswith(artifact.model_root) and not info.is_dir()
        ]
