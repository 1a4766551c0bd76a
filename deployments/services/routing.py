"""The route table: which model servers get an endpoint's traffic, and how gateways learn it."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from deployments.models import Endpoint, GatewayInstance, ModelServer, RouteBackend, RouteRevision

logger = logging.getLogger("deployments.routing")

# A gateway that has not polled for this long no longer counts as live.
GATEWAY_LIVENESS = timedelta(seconds=10)
# A live gateway refreshes its last_seen at least this often.
LAST_SEEN_WRITE_INTERVAL = timedelta(seconds=2)


def current_revision() -> int:
    row = RouteRevision.objects.filter(pk=1).values_list("revision", flat=True).first()
    return row or 0


@dataclasses.dataclass(frozen=True)
class PreviewRoute:
    """Requests whose `header` equals `value` go to `server` whatever the weights."""

    server: ModelServer
    header: str
    value: str


def set_traffic(
    endpoint: Endpoint,
    split: dict[ModelServer, Decimal | int | float],
    roles: dict[int, str],
    preview: PreviewRoute | None = None,
) -> int:
    """Replace the endpoint's traffic split in one revision and return that revision.

    `split` maps servers to weights in percent that add up to 100, or is empty
    to take the endpoint out of service. A server with weight 0 stays in the
    table for `preview` only. Servers that lose their traffic get
    `unrouted_revision`, which the scale-down waits for.
    """
    weights = {server: Decimal(str(weight)).quantize(Decimal("0.1")) for server, weight in split.items()}
    total = sum(weights.values(), Decimal(0))
    if weights and total != Decimal(100):
        raise ValueError(f"Traffic weights for endpoint {endpoint.name} add up to {total}, not 100.")
    if preview is not None and preview.server not in weights:
        raise ValueError(f"The preview route of endpoint {endpoint.name} names server {preview.server.pk}, which is not in the split.")

    with transaction.atomic():
        revision_row, _ = RouteRevision.objects.select_for_update().get_or_create(pk=1)
        revision_row.revision += 1
        revision_row.save(update_fields=["revision", "updated_at"])
        revision = revision_row.revision

        previous = set(RouteBackend.objects.filter(endpoint=endpoint).values_list("server_id", flat=True))
        RouteBackend.objects.filter(endpoint=endpoint).delete()
        RouteBackend.objects.bulk_create(
            RouteBackend(
                endpoint=endpoint,
                server=server,
                weight=weight,
                role=roles.get(server.pk, RouteBackend.Role.STABLE),
                preview_header=preview.header if preview and preview.server == server else "",
                preview_value=preview.value if preview and preview.server == server else "",
            )
            for server, weight in weights.items()
        )

        routed = {server.pk for server, weight in weights.items() if weight > 0}
        ModelServer.objects.filter(pk__in=previous - routed).update(unrouted_revision=revision)
        ModelServer.objects.filter(pk__in=routed).update(unrouted_revision=None, stop_after=None)

    logger.info(
        "Route revision %d: endpoint %s now sends %s%s",
        revision,
        endpoint.name,
        ", ".join(f"{weight}% to server {server.pk} (v{server.version.version})" for server, weight in weights.items())
        or "nothing",
        f"; {preview.header}: {preview.value} reaches server {preview.server.pk}" if preview else "",
    )
    return revision


def route_table() -> dict:
    """Build the JSON the gateways poll (see docs/architecture.md, "Route table")."""
    revision = current_revision()
    backends = RouteBackend.objects.select_related("endpoint", "server__version__model").order_by(
        "endpoint__name", "role", "server_id"
    )

    endpoints: dict[str, dict] = {}
    for endpoint in Endpoint.objects.all():
        endpoints[endpoint.name] = {
            "backends": [],
            "sticky_header": endpoint.sticky_header or None,
            "preview": None,
            "rules": [],
        }

    for backend in backends:
        server = backend.server
        if backend.preview_header:
            endpoints[backend.endpoint.name]["preview"] = {
                "header": backend.preview_header,
                "value": backend.preview_value,
                "backend": f"s{server.pk}",
            }
        endpoints[backend.endpoint.name]["backends"].append(
            {
                "key": f"s{server.pk}",
                "server_id": server.pk,
                "model": server.version.model.name,
                "version": server.version.version,
                "url": server.url,
                "model_name": backend.endpoint.name,
                "weight": float(backend.weight),
                "role": backend.role,
            }
        )
    return {"revision": revision, "endpoints": endpoints}


def current_stable_server(endpoint: Endpoint) -> ModelServer | None:
    """Return the server that gets most of the endpoint's traffic now, if any."""
    backend = (
        RouteBackend.objects.filter(endpoint=endpoint, weight__gt=0)
        .select_related("server__version")
        .order_by("-weight", "server_id")
        .first()
    )
    return backend.server if backend else None


def traffic_split(endpoint: Endpoint) -> list[RouteBackend]:
    return list(
        RouteBackend.objects.filter(endpoint=endpoint).select_related("server__version__model").order_by("-weight")
    )


def record_gateway_poll(instance: str, revision: int) -> None:
    """Remember which revision a gateway process has, writing at most every couple of seconds."""
    now = timezone.now()
    updated = GatewayInstance.objects.filter(instance=instance).exclude(
        revision=revision, last_seen__gte=now - LAST_SEEN_WRITE_INTERVAL
    ).update(revision=revision, last_seen=now)
    if not updated and not GatewayInstance.objects.filter(instance=instance).exists():
        GatewayInstance.objects.get_or_create(instance=instance, defaults={"revision": revision, "last_seen": now})
        logger.info("Gateway %s connected at revision %d", instance, revision)


def gateways_have(revision: int) -> bool:
    """Return whether every live gateway process has applied `revision` of the route table."""
    live = GatewayInstance.objects.filter(last_seen__gte=timezone.now() - GATEWAY_LIVENESS)
    return not live.filter(revision__lt=revision).exists()
