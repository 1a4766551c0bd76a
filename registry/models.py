"""Registered models, their numbered versions, aliases, tags and artifacts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


def normalize_model_name(name: str) -> str:
    """Return the key that makes names differing only in case or outer spaces collide."""
    return name.strip().casefold()


class RegisteredModel(models.Model):
    """A named model; its versions are numbered 1, 2, 3… from `last_version`."""

    name = models.CharField(max_length=256)
    name_key = models.CharField(max_length=256, unique=True, editable=False)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Incremented under a row lock when a version is registered, so concurrent
    # registrations get distinct consecutive numbers.
    last_version = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name_key"]
        indexes = [models.Index(fields=["-updated_at", "-id"], name="model_updated_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name_key = normalize_model_name(self.name)
        super().save(*args, **kwargs)


class ModelTag(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=5000, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "key"], name="unique_model_tag_key")]
        ordering = ["key"]


def artifact_upload_path(instance: Artifact, filename: str) -> str:
    """Build the storage path from the digest only, never from a user-supplied name."""
    return f"artifacts/{instance.sha256[:2]}/{instance.sha256}.zip"


class Artifact(models.Model):
    """A zipped MLflow model directory, stored once per content digest."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    file = models.FileField(upload_to=artifact_upload_path, max_length=200)
    # Folder inside the zip that contains MLmodel ("" when it sits at the root).
    model_root = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256[:12]


class ModelVersionQuerySet(models.QuerySet):
    def deployable(self):
        """Versions that a new release may start from: not archived and not failed."""
        return self.filter(archived=False).exclude(status=ModelVersion.Status.FAILED)


class ModelVersion(models.Model):
    """One numbered, immutable version of a registered model and what it was built from."""

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    class Source(models.TextChoices):
        UPLOAD = "upload"
        MLFLOW = "mlflow"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_reason = models.TextField(blank=True)
    artifact = models.ForeignKey(Artifact, null=True, on_delete=models.PROTECT, related_name="versions")
    flavors = models.JSONField(default=dict)
    signature = models.JSONField(null=True, blank=True)
    input_example = models.JSONField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    source_uri = models.CharField(max_length=1000, blank=True)
    tracking_uri = models.CharField(max_length=1000, blank=True)
    mlflow_run_id = models.CharField(max_length=64, blank=True)
    mlflow_model_id = models.CharField(max_length=64, blank=True)
    # sha256 of the tracking URI and the canonical MLflow URI (models:/NAME/N or
    # runs:/ID/PATH) of an imported version, so a repeated import finds it.
    import_key = models.CharField(max_length=64, blank=True, editable=False)
    description = models.TextField(blank=True)
    archived = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="unique_model_version"),
            models.UniqueConstraint(
                fields=["model", "import_key"], condition=~Q(import_key=""), name="unique_model_import_key"
            ),
        ]
        indexes = [models.Index(fields=["-created_at", "-id"], name="version_created_idx")]
        ordering = ["model_id", "-version"]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.model.name}/{self.version}"


class VersionTag(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tags")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=5000, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="unique_version_tag_key")]
        ordering = ["key"]


class ModelAlias(models.Model):
    """A movable name (champion, challenger, …) for one version of a model."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.SlugField(max_length=100)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="unique_model_alias")]
        ordering = ["alias"]
