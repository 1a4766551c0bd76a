"""The two routes gateways call: route-table polling and counter reports.

They are plain Django views rather than DRF views: every gateway process
polls several times a second, and the 304 path must stay cheap.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from deployments.services import routing, traffic
from mlops_portal.errors import InvalidInput

logger = logging.getLogger("deployments.api.gateway")


def _authorized(request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), settings.PORTAL_GATEWAY_TOKEN.encode())


def _unauthorized() -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "not_authenticated", "message": "Send the gateway token as 'Authorization: Bearer <token>'."}},
        status=401,
    )


@require_GET
def routes(request):
    if not _authorized(request):
        return _unauthorized()

    revision = routing.current_revision()
    etag = f'"{revision}"'
    instance = request.headers.get("X-Gateway-Instance", "")[:200]
    known = request.headers.get("If-None-Match", "")
    if instance and known.startswith('"'):
        try:
            routing.record_gateway_poll(instance, int(known.strip('"')))
        except ValueError:
            pass

    if known == etag:
        response = HttpResponse(status=304)
    else:
        table = routing.route_table()
        response = JsonResponse(table)
        etag = f'"{table["revision"]}"'
    response["ETag"] = etag
    return response


@csrf_exempt
@require_POST
def reports(request):
    if not _authorized(request):
        return _unauthorized()

    try:
        report = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": {"code": "invalid", "message": "The report body is not valid JSON."}}, status=400)
    if not isinstance(report, dict):
        return JsonResponse({"error": {"code": "invalid", "message": "The report must be a JSON object."}}, status=400)

    try:
        stored = traffic.store_report(report)
    except InvalidInput as exc:
        return JsonResponse({"error": exc.as_dict()}, status=400)
    return JsonResponse({"stored": stored})
