"""Environments, endpoints, releases, model servers and the gateway's route table."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.models import ModelVersion


class Environment(models.Model):
    """A stage such as development, staging or production, with the rules for releasing to its endpoints."""

    class Runtime(models.TextChoices):
        LOCAL = "local", "Local process"
        DOCKER = "docker", "Docker engine"

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    requires_approval = models.BooleanField(default=False)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    runtime = models.CharField(max_length=32, choices=Runtime.choices, default=Runtime.LOCAL)
    runtime_config = models.JSONField(default=dict, blank=True)
    # Empty: every user with a role sees the environment. Otherwise only
    # members of these groups, ops leads and admins do (mlops_portal.access).
    restricted_to = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="environments",
        help_text="Groups whose members may see this environment; leave empty to show it to every user with a role.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Endpoint(models.Model):
    """A stable name that prediction clients call; the gateway routes it to model servers."""

    name = models.SlugField(max_length=64, unique=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="endpoints")
    description = models.TextField(blank=True)
    # Requests that carry this header are routed by a hash of its value, so a
    # client keeps its version while the traffic split stays the same.
    sticky_header = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelServer(models.Model):
    """One running model server for one version behind one endpoint."""

    class State(models.TextChoices):
        PENDING = "pending"
        STARTING = "starting"
        READY = "ready"
        FAILED = "failed"
        STOPPING = "stopping"
        STOPPED = "stopped"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="servers")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="servers")
    runtime = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    url = models.CharField(max_length=300, blank=True)
    handle = models.JSONField(default=dict, blank=True)
    # Limits from the release plan, such as {"memory_mb": 512, "cpus": 1.0}.
    resources = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    # Set when the server loses its traffic: it is stopped after this time,
    # once every gateway has applied `unrouted_revision` of the route table.
    stop_after = models.DateTimeField(null=True, blank=True)
    unrouted_revision = models.BigIntegerField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"server {self.pk} ({self.endpoint.name}, v{self.version.version})"

    @property
    def is_running(self) -> bool:
        return self.state in (self.State.STARTING, self.State.READY)


class ImageBuild(models.Model):
    """One preparation of a model server's image, with its log streamed in while it runs.

    Runtimes that build images (docker) prepare a server in a Celery task of
    its own, outside the release's row lock, and the controller polls the
    build's state. A build whose image already existed succeeds with `reused` set.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED)

    server = models.ForeignKey(ModelServer, on_delete=models.CASCADE, related_name="builds")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="image_builds")
    runtime = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    image = models.CharField(max_length=300, blank=True)
    image_id = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=64, blank=True)
    reused = models.BooleanField(default=False)
    # "3/9" and the instruction of the step the build is in, from the engine's output.
    step = models.CharField(max_length=16, blank=True)
    step_description = models.CharField(max_length=200, blank=True)
    log = models.TextField(blank=True)
    # Characters dropped from the log's beginning to keep it within its limit,
    # so that offsets into the whole log stay valid for clients that follow it.
    log_dropped = models.PositiveBigIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    prepared = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Moves with every log write, so a build whose worker died shows as stale.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"build {self.pk} (server {self.server_id}, {self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def progress(self) -> float | None:
        """Share of the Dockerfile steps done, 0 to 1, or None before the first step."""
        if self.state == self.State.SUCCEEDED:
            return 1.0
        done, _, total = self.step.partition("/")
        if not (done.isdigit() and total.isdigit()) or int(total) == 0:
            return None
        return (int(done) - 1) / int(total)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class Release(models.Model):
    """Moving an endpoint's traffic from its stable version to a candidate version."""

    class State(models.TextChoices):
        DRAFT = "draft"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        APPROVED = "approved"
        BUILDING = "building"
        DEPLOYING = "deploying"
        PROGRESSING = "progressing"
        PAUSED = "paused"
        PROMOTED = "promoted"
        FAILED = "failed"
        ABORTED = "aborted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        REJECTED = "rejected"

    class Strategy(models.TextChoices):
        BLUE_GREEN = "blue_green", "Blue/green"
        CANARY = "canary", "Canary"

    ACTIVE_STATES = (
        State.APPROVED,
        State.BUILDING,
        State.DEPLOYING,
        State.PROGRESSING,
        State.PAUSED,
    )
    # Active states that the controller advances by itself. A paused release waits for a person.
    RUNNING_STATES = (State.APPROVED, State.BUILDING, State.DEPLOYING, State.PROGRESSING)
    OPEN_STATES = (State.DRAFT, State.AWAITING_APPROVAL, *ACTIVE_STATES)
    FINAL_STATES = (State.PROMOTED, State.FAILED, State.ABORTED, State.ROLLED_BACK, State.REJECTED)

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="releases")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="releases")
    stable_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.BLUE_GREEN)
    plan = models.JSONField(default=dict, blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    class PauseReason(models.TextChoices):
        MANUAL = "manual", "Paused by a person"
        STEP = "step", "Pause step until promoted"
        INCONCLUSIVE = "inconclusive", "Analysis inconclusive"
        DEADLINE = "deadline", "Progress deadline passed"

    state = models.CharField(max_length=24, choices=State.choices, default=State.DRAFT)
    # Position in plan["steps"], equal to len(steps) once every step is done.
    step_index = models.PositiveIntegerField(default=0)
    # Starts of the current step: an analysis that failed below the failure
    # limit, or that a person resumed, runs again with the next number.
    step_attempt = models.PositiveIntegerField(default=0)
    # Runs of the whole release, counted from 1. `retry` starts the next one.
    attempt = models.PositiveIntegerField(default=1)
    failed_analyses = models.PositiveIntegerField(default=0)
    canary_weight = models.DecimalField(max_digits=4, decimal_places=1, default=0)
    pause_reason = models.CharField(max_length=16, choices=PauseReason.choices, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    candidate_server = models.ForeignKey(
        ModelServer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stable_server = models.ForeignKey(ModelServer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    step_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the controller should run next; the periodic sweep requeues
    # active releases whose run is overdue because a worker died.
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Each scheduled controller run carries this token, and every run and
    # every action that reschedules the controller increments it. Only the one
    # message that carries the current value does anything, so a message that
    # the broker delivers again after a worker died finds a newer token and
    # stops, and a release never has two chains of runs.
    run_token = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one release per endpoint is in progress at a time.
            models.UniqueConstraint(
                fields=["endpoint"],
                condition=Q(state__in=["approved", "building", "deploying", "progressing", "paused"]),
                name="one_active_release_per_endpoint",
            )
        ]

    def __str__(self) -> str:
        return f"release {self.pk} of {self.version} to {self.endpoint.name}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def can_be_withdrawn(self) -> bool:
        """Whether the release has not started: it awaits approval, or is approved without a candidate server yet.

        Aborting such a release changes no traffic, so its requester may do it
        without the role that operates releases (mlops_portal.access.can_abort).
        """
        if self.state == self.State.AWAITING_APPROVAL:
            return True
        return self.state == self.State.APPROVED and self.candidate_server_id is None


class ReleaseEvent(models.Model):
    """One thing that happened to a release: a state change, a traffic change, an action."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    from_state = models.CharField(max_length=24, blank=True)
    to_state = models.CharField(max_length=24, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    # Controller steps record their event with a key; the unique constraint
    # makes a step that runs twice (after a worker died) record it once.
    step_key = models.CharField(max_length=100, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["release", "step_key"], name="unique_release_step_key"),
        ]


class RouteRevision(models.Model):
    """A single row whose counter grows with every route-table change; gateways poll it."""

    revision = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class RouteBackend(models.Model):
    """One model server's share of an endpoint's traffic."""

    class Role(models.TextChoices):
        STABLE = "stable"
        CANDIDATE = "candidate"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="backends")
    server = models.ForeignKey(ModelServer, on_delete=models.CASCADE, related_name="backends")
    weight = models.DecimalField(max_digits=4, decimal_places=1)
    role = models.CharField(max_length=16, choices=Role.choices)
    # Requests whose header `preview_header` equals `preview_value` reach this
    # backend whatever its weight. At most one backend per endpoint has one.
    preview_header = models.CharField(max_length=100, blank=True)
    preview_value = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "server"], name="unique_endpoint_backend")]
        ordering = ["endpoint_id", "-weight"]


class GatewayInstance(models.Model):
    """A gateway process, known from its polls; used to wait until every gateway has a revision."""

    instance = models.CharField(max_length=200, unique=True)
    revision = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()


class TrafficSample(models.Model):
    """A gateway process's cumulative counters for one backend at one time."""

    instance = models.CharField(max_length=200)
    gateway_started_at = models.DateTimeField()
    endpoint = models.CharField(max_length=64)
    server_id = models.BigIntegerField()
    version = models.PositiveIntegerField()
    requests = models.BigIntegerField()
    server_errors = models.BigIntegerField()
    client_errors = models.BigIntegerField()
    latency_sum = models.FloatField()
    latency_buckets = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["server_id", "created_at"])]


class Approval(models.Model):
    """One approver's decision on a release that waits for approval; a rejection carries its reason."""

    class Decision(models.TextChoices):
        APPROVED = "approved"
        REJECTED = "rejected"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["release", "approver"], name="one_decision_per_approver"),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} release {self.release_id}"
