"""The release wizard: one URL; each post moves between steps and re-renders the wizard partial.

Buttons post `goto` with the step to show next ("submit" on the last step)
or `op` to edit the canary plan in place. Moving forward checks every
earlier step, and the first invalid one is shown with its errors (status
422, which htmx is configured to swap). Without htmx the same posts render
the whole page, so the wizard also works as plain forms.
"""

import logging

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from deployments.services import releases
from deployments.wizard import STEP_TITLES, STEPS, Wizard, version_choices
from mlops_portal import access
from mlops_portal.errors import PortalError

logger = logging.getLogger("deployments.views")

# Service errors on submit, shown on the step whose field the error names
# (the release engine names plan fields by path, such as "plan.steps[2].weight").
FIELD_STEPS = {
    "version": "version",
    "model": "version",
    "endpoint": "target",
    "environment": "target",
    "strategy": "strategy",
    "plan": "strategy",
    "analysis": "analysis",
}


@login_required
def release_wizard(request):
    access.check_can_request(request.user)

    if request.method != "POST":
        initial = {"version": {"model": request.GET.get("model", "")}, "target": {"endpoint": request.GET.get("endpoint", "")}}
        return _render(request, Wizard(request.user, initial=initial), "version")

    wizard = Wizard(request.user, request.POST)
    op = request.POST.get("op", "")
    if op:
        return _edit_plan(request, wizard, op)

    goto = request.POST.get("goto", "version")
    if goto not in STEPS and goto != "submit":
        goto = "version"
    invalid = wizard.first_invalid_step(goto)
    if invalid is not None and _is_forward(request, goto):
        return _render(request, wizard, invalid, status=422)
    if goto != "submit":
        return _render(request, wizard, goto)
    return _submit(request, wizard)


def _is_forward(request, goto: str) -> bool:
    current = request.POST.get("current", "version")
    if goto == "submit":
        return True
    return current in STEPS and STEPS.index(goto) > STEPS.index(current)


def _edit_plan(request, wizard: Wizard, op: str):
    if op == "add-step":
        wizard.add_canary_step()
    elif op.startswith("remove-step-") and op.removeprefix("remove-step-").isdigit():
        wizard.remove_canary_step(int(op.removeprefix("remove-step-")))
    return _render(request, wizard, "strategy", show_errors=False)


def _submit(request, wizard: Wizard):
    endpoint = wizard.forms["target"].cleaned_data["endpoint_object"]
    environment = wizard.forms["target"].cleaned_data["environment_object"]
    try:
        if endpoint is None:
            endpoint = releases.get_or_create_endpoint(wizard.forms["target"].cleaned_data["endpoint"], environment, actor=request.user)
        release = releases.create_release(endpoint, wizard.version(), actor=request.user, **wizard.release_arguments())
    except PortalError as exc:
        step = FIELD_STEPS.get((exc.field or "").split(".")[0].split("[")[0], "review")
        form = wizard.forms[step]
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _render(request, wizard, step, status=exc.status if exc.status != 400 else 422)

    logger.info("User %s requested release %s of %s to %s", request.user.pk, release.pk, release.version, endpoint.name)
    url = reverse("release-detail", kwargs={"release_id": release.pk})
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _render(request, wizard: Wizard, step: str, status: int = 200, show_errors: bool = True):
    context = {
        "wizard": wizard,
        "step": step,
        "step_number": STEPS.index(step) + 1,
        "steps": [(name, STEP_TITLES[name]) for name in STEPS],
        "show_errors": show_errors,
    }
    if step == "review":
        context["signature"] = wizard.signature_check()
    if step in ("strategy", "review"):
        context["plan_rows"] = wizard.plan_rows() if wizard.is_canary else []
        context["estimated_seconds"] = wizard.estimated_seconds()
        context["waits_for_person"] = wizard.waits_for_person()
        context["startup_seconds"] = wizard.startup_seconds
    template = "deployments/partials/wizard.html" if request.htmx else "deployments/release_wizard.html"
    return render(request, template, context, status=status)


@login_required
def wizard_versions(request):
    """Return the version options for the model chosen in the wizard's first step."""
    model = request.GET.get("version-model", "")
    if model and not access.visible_models(request.user).filter(name=model).exists():
        model = ""
    return render(request, "deployments/partials/wizard_version_options.html", {"choices": version_choices(model)})
