"""Release actions from the browser: approve, reject, pause, resume, promote, abort, roll back, retry.

Each view looks the release up through mlops_portal.access with the action's
capability, checks the free text, and calls the same service function as the
API. With htmx the response is the refreshed action panel. It also triggers
`release-changed`, so the live part reloads at once. Without htmx the
response is a redirect to the release page.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from deployments import presenters
from deployments.release_actions import ACTIONS_BY_NAME, ReleaseAction
from deployments.services.restore import restore_version
from mlops_portal import access
from mlops_portal.access import Capability
from mlops_portal.errors import InvalidInput, NotFound, PortalError

logger = logging.getLogger("deployments.views")

MAX_TEXT_LENGTH = 2000


@login_required
@require_POST
def release_action(request, release_id, action_name):
    action = ACTIONS_BY_NAME[action_name]
    release = access.get_release_for_user(request.user, release_id, action.capability)

    text = request.POST.get(action.text_field, "").strip()
    try:
        _check_text(action, text)
        action.run(release.pk, actor=request.user, text=text)
    except PortalError as exc:
        return _action_failed(request, release_id, action, exc)

    logger.info("User %s: %s on release %s", request.user.pk, action.name, release.pk)
    return _action_done(request, release_id, f"{action.label}: done.")


def _check_text(action: ReleaseAction, text: str) -> None:
    if action.text_required and not text:
        raise InvalidInput(f"Give a {action.text_field} to {action.label.lower()}.", field=action.text_field)
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"The {action.text_field} has {len(text)} characters; at most {MAX_TEXT_LENGTH} are allowed.", field=action.text_field)


def _action_failed(request, release_id, action: ReleaseAction, error: PortalError):
    if not request.htmx:
        messages.error(request, error.message)
        return redirect("release-detail", release_id=release_id)

    release = access.get_release_for_user(request.user, release_id)
    context = {**presenters.release_page(request.user, release), "error": error}
    # The panel shows the error under the action's form, or at its top when the
    # release moved to a state that no longer offers the action.
    if any(offered.name == action.name for offered in context["actions"]):
        context["failed_action"] = action.name
    status = 422 if isinstance(error, InvalidInput) else error.status
    return render(request, "deployments/partials/release_actions.html", context, status=status)


def _action_done(request, release_id, message: str):
    if not request.htmx:
        messages.success(request, message)
        return redirect("release-detail", release_id=release_id)

    release = access.get_release_for_user(request.user, release_id)
    context = {**presenters.release_page(request.user, release), "done_message": message}
    response = render(request, "deployments/partials/release_actions.html", context)
    response["HX-Trigger"] = "release-changed"
    return response


@login_required
@require_POST
def endpoint_restore(request, name):
    """Send the endpoint back to an earlier version (see deployments.services.restore)."""
    endpoint = access.get_endpoint_for_user(request.user, name, Capability.OPERATE)
    version = presenters.version_of_endpoint(endpoint, request.POST.get("version", ""))
    if version is None:
        raise NotFound(f"Endpoint {endpoint.name} served no version with id {request.POST.get('version')!r} recently.")

    reason = request.POST.get("reason", "").strip()[:MAX_TEXT_LENGTH]
    if not reason:
        messages.error(request, f"Give a reason to roll back to v{version.version}.")
        return redirect("endpoint-detail", name=endpoint.name)

    try:
        release = restore_version(endpoint, version, actor=request.user, reason=reason)
    except PortalError as exc:
        messages.error(request, exc.message)
        return redirect("endpoint-detail", name=endpoint.name)

    messages.success(request, f"Release #{release.pk} returns {endpoint.name} to v{version.version}.")
    return redirect("release-detail", release_id=release.pk)
