"""The release wizard's steps: one Django form per step, carried between requests in the page.

Every request posts the fields of all steps (the steps not on screen as
hidden inputs), so the server keeps no wizard state, and the browser's back
button or a second tab cannot mix two wizards. A step's form is bound only
after the user has seen it (its `<step>-seen` marker is in the data), so a
step shown for the first time shows no errors.

The canary editor has one row per traffic weight, each with an optional pause,
analysis and wait for a person's promotion after it. `release_arguments` turns the rows into the release
engine's plan (see deployments.services.plans), for example

    plan = {"steps": [{"weight": 10}, {"pause": {"duration": 60}}, {"analysis": {}}, {"pause": {}}, {"weight": 50}, ...]}
    analysis = {"window": 60, "min_requests": 50, "failure_limit": 1,
                "metrics": [{"metric": "error_rate", "max": 0.01}, {"metric": "latency_p95_ms", "max": 500}]}

After the last step the release engine promotes the candidate to 100 %.
"""

from __future__ import annotations

import dataclasses
import functools
from decimal import Decimal

from django import forms
from django.forms import formset_factory
from django.urls import reverse, reverse_lazy

from deployments.models import Release
from deployments.services import estimates, plans
from deployments.services.releases import current_stable_server
from mlops_portal import access
from mlops_portal.errors import PortalError
from registry.models import ModelVersion
from registry.services import compare
from registry.services.versions import get_version

STEPS = ["version", "target", "strategy", "analysis", "review"]
STEP_TITLES = {
    "version": "Model and version",
    "target": "Endpoint and environment",
    "strategy": "Strategy",
    "analysis": "Analysis thresholds",
    "review": "Review",
}
MAX_CANARY_STEPS = 20
DEFAULT_CANARY_STEPS = [
    {"weight": 10, "pause_seconds": 0, "analysis": True, "wait_for_promotion": False},
    {"weight": 50, "pause_seconds": 60, "analysis": True, "wait_for_promotion": False},
]
DEFAULT_ANALYSIS_INTERVAL = int(plans.DEFAULT_WINDOW_SECONDS)


class VersionStepForm(forms.Form):
    model = forms.ChoiceField(label="Model")
    version = forms.ChoiceField(label="Version or alias")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        names = list(access.visible_models(user).values_list("name", flat=True))
        self.fields["model"].choices = [("", "Choose a model")] + [(name, name) for name in names]
        self.fields["version"].choices = version_choices(self._chosen_model())
        self.fields["model"].widget.attrs.update(
            {"hx-get": reverse("release-wizard-versions"), "hx-target": "#id_version-version", "hx-swap": "innerHTML"}
        )

    def _chosen_model(self) -> str:
        key = self.add_prefix("model")
        if self.is_bound:
            return self.data.get(key, "")
        return self.initial.get("model", "")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned

        kind, _, value = cleaned["version"].partition(":")
        try:
            if kind == "alias":
                version = get_version(cleaned["model"], alias=value)
            else:
                version = get_version(cleaned["model"], version=value)
        except PortalError as exc:
            self.add_error("version", exc.message)
            return cleaned

        if version.status == ModelVersion.Status.FAILED:
            self.add_error("version", f"v{version.version} failed its load check: {version.status_reason}")
        elif version.archived:
            self.add_error("version", f"v{version.version} is archived; choose another version.")
        cleaned["resolved"] = version
        return cleaned


def version_choices(model_name: str) -> list[tuple[str, str]]:
    """Return the aliases and versions of a model as select options, newest version first."""
    if not model_name:
        return [("", "Choose a model first")]
    versions = list(
        ModelVersion.objects.filter(model__name=model_name).prefetch_related("aliases").order_by("-version")[:100]
    )
    choices = [("", "Choose a version")]
    for version in versions:
        for alias in version.aliases.all():
            choices.append((f"alias:{alias.alias}", f"@{alias.alias} (now v{version.version})"))
    for version in versions:
        status = "" if version.status == ModelVersion.Status.READY else f" ({version.status})"
        choices.append((f"version:{version.version}", f"v{version.version}{status}"))
    return choices


class TargetStepForm(forms.Form):
    endpoint = forms.SlugField(
        label="Endpoint",
        max_length=64,
        help_text="Clients call the gateway with this name. A new name creates the endpoint.",
    )
    environment = forms.ChoiceField(label="Environment")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        environments = [env for env in access.visible_environments(user) if access.can_request_in(user, env)]
        self.environments = {env.name: env for env in environments}
        self.fields["environment"].choices = [("", "Choose an environment")] + [
            (env.name, _environment_label(env)) for env in environments
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned

        try:
            endpoint = access.check_endpoint_name_for_request(self.user, cleaned["endpoint"])
        except PortalError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
            return cleaned

        environment = self.environments[cleaned["environment"]]
        if endpoint is not None and endpoint.environment_id != environment.pk:
            self.add_error(
                "environment",
                f"Endpoint {endpoint.name} is in {endpoint.environment.name}; choose {endpoint.environment.name} or another endpoint name.",
            )
            return cleaned
        if endpoint is not None:
            open_release = endpoint.releases.filter(state__in=Release.OPEN_STATES).first()
            if open_release is not None:
                self.add_error(
                    "endpoint",
                    f"Endpoint {endpoint.name} already has release #{open_release.pk} ({open_release.get_state_display().lower()}); "
                    "wait for it to finish or abort it.",
                )
        cleaned["endpoint_object"] = endpoint
        cleaned["environment_object"] = environment
        return cleaned


def _environment_label(environment) -> str:
    if not environment.requires_approval:
        return f"{environment.name} (starts at once)"
    count = max(1, environment.approvals_required)
    return f"{environment.name} (needs {count} approval{'s' if count > 1 else ''})"


# Inputs with these attributes re-render the strategy step when they change,
# which shows or hides the canary plan and updates the plan's preview.
REFRESH_ATTRS = {"hx-post": reverse_lazy("release-wizard"), "hx-trigger": "change", "hx-vals": '{"op": "refresh"}'}


class StrategyStepForm(forms.Form):
    strategy = forms.ChoiceField(
        label="Strategy",
        choices=Release.Strategy.choices,
        widget=forms.RadioSelect(attrs=REFRESH_ATTRS),
        initial=Release.Strategy.BLUE_GREEN,
    )


class CanaryStepForm(forms.Form):
    weight = forms.DecimalField(
        label="Traffic to the candidate (%)", min_value=Decimal("0.1"), max_value=100, decimal_places=1,
        widget=forms.NumberInput(attrs={**REFRESH_ATTRS, "step": "0.1"}),
    )
    pause_seconds = forms.IntegerField(
        label="Pause after the step (s)", min_value=0, max_value=86400, widget=forms.NumberInput(attrs=REFRESH_ATTRS)
    )
    analysis = forms.BooleanField(label="Run analysis", required=False, widget=forms.CheckboxInput(attrs=REFRESH_ATTRS))
    wait_for_promotion = forms.BooleanField(
        label="Wait until a person promotes", required=False, widget=forms.CheckboxInput(attrs=REFRESH_ATTRS)
    )


class BaseCanaryStepFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        weights = [form.cleaned_data["weight"] for form in self.forms if not self._should_delete_form(form)]
        if not weights:
            raise forms.ValidationError("A canary release needs at least one step.")
        for previous, current in zip(weights, weights[1:]):
            if current <= previous:
                raise forms.ValidationError(f"Each step must send more traffic than the one before ({current}% follows {previous}%).")


CanaryStepFormSet = formset_factory(
    CanaryStepForm, formset=BaseCanaryStepFormSet, extra=0, max_num=MAX_CANARY_STEPS, validate_max=True
)


class AnalysisStepForm(forms.Form):
    max_error_rate = forms.DecimalField(
        label="Maximum error rate (%)", min_value=0, max_value=100, decimal_places=2, initial=Decimal("1.0"),
        help_text="Share of the candidate's requests that end in a server error.",
    )
    max_p95_latency_ms = forms.IntegerField(
        label="Maximum p95 latency (ms)", min_value=1, max_value=600000, initial=500,
        help_text="95th percentile of the candidate's response time at the gateway.",
    )
    min_requests = forms.IntegerField(
        label="Minimum requests", min_value=0, max_value=10_000_000, initial=plans.DEFAULT_MIN_REQUESTS,
        help_text="With fewer candidate requests in the window the analysis is inconclusive and the release pauses.",
    )
    interval_seconds = forms.IntegerField(
        label="Analysis window (s)", min_value=1, max_value=plans.MAX_WINDOW_SECONDS, initial=DEFAULT_ANALYSIS_INTERVAL,
        help_text="How long each analysis measures before it decides.",
    )
    failure_limit = forms.IntegerField(
        label="Failed analyses before rollback", min_value=1, max_value=100, initial=plans.DEFAULT_FAILURE_LIMIT,
        help_text="A failed analysis below this count runs again; reaching it rolls the release back.",
    )


class ReviewStepForm(forms.Form):
    confirm_incompatible = forms.BooleanField(
        label="I understand that clients of the endpoint may fail with the new signature", required=False
    )

    def __init__(self, *args, signature_check, **kwargs):
        super().__init__(*args, **kwargs)
        self.signature_check = signature_check

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("confirm_incompatible") and not self.signature_check().compatible:
            self.add_error("confirm_incompatible", "The inputs changed; confirm that clients can handle the change.")
        return cleaned


@dataclasses.dataclass
class PlanRow:
    number: int
    weight: Decimal
    pause_seconds: int
    analysis: bool
    wait_for_promotion: bool
    starts_at: int  # seconds after the release starts, not counting waits for a person


@dataclasses.dataclass
class SignatureCheck:
    live_version: ModelVersion | None
    changes: list[str]

    @property
    def compatible(self) -> bool:
        return not self.changes


def _halfway_to_full(rows: list[dict]) -> Decimal:
    """Return a weight halfway between the last row's weight and 100, as a starting value for a new row."""
    try:
        last = Decimal(str(rows[-1]["weight"])) if rows else Decimal(0)
    except ArithmeticError:
        last = Decimal(0)
    return min(Decimal(100), ((last + 100) / 2).quantize(Decimal("1")))


def _checked(value) -> bool:
    """Read a checkbox as the CheckboxInput widget does: "on", "true" and "True" are checked."""
    return str(value).lower() in ("on", "true", "1") if value is not None else False


class Wizard:
    """All step forms for one request, built from posted data (or from initial values on the first visit)."""

    def __init__(self, user, data=None, initial: dict | None = None):
        self.user = user
        self.data = data
        initial = initial or {}

        def bound(step):
            return data if data is not None and f"{step}-seen" in data else None

        self.forms = {
            "version": VersionStepForm(bound("version"), prefix="version", user=user, initial=initial.get("version")),
            "target": TargetStepForm(bound("target"), prefix="target", user=user, initial=initial.get("target")),
            "strategy": StrategyStepForm(bound("strategy"), prefix="strategy"),
            "analysis": AnalysisStepForm(bound("analysis"), prefix="analysis"),
            "review": ReviewStepForm(bound("review"), prefix="review", signature_check=self.signature_check),
        }
        self.steps = self._steps_formset(bound("strategy"))

    def _steps_formset(self, data):
        if data is not None and "steps-TOTAL_FORMS" in data:
            return CanaryStepFormSet(data, prefix="steps")
        return CanaryStepFormSet(prefix="steps", initial=DEFAULT_CANARY_STEPS)

    # --- step checks ---

    def step_is_valid(self, step: str) -> bool:
        form = self.forms[step]
        if step == "analysis" and not self.runs_analysis:
            return True
        if not form.is_bound or not form.is_valid():
            return False
        if step == "strategy" and self.is_canary:
            return self.steps.is_bound and self.steps.is_valid()
        return True

    def first_invalid_step(self, before: str) -> str | None:
        """Return the first step before `before` (inclusive when it is "submit") that is not valid."""
        limit = len(STEPS) if before == "submit" else STEPS.index(before)
        for step in STEPS[:limit]:
            if not self.step_is_valid(step):
                return step
        return None

    @property
    def runs_analysis(self) -> bool:
        """True for a canary plan with at least one step that runs analysis."""
        return self.is_canary and any(row["analysis"] for row in self._raw_steps())

    @property
    def is_canary(self) -> bool:
        form = self.forms["strategy"]
        value = form.data.get("strategy-strategy") if form.is_bound else None
        return value == Release.Strategy.CANARY

    # --- editing the canary plan ---

    def add_canary_step(self) -> None:
        rows = self._raw_steps()
        if len(rows) < MAX_CANARY_STEPS:
            rows.append({"weight": _halfway_to_full(rows), "pause_seconds": 60, "analysis": True, "wait_for_promotion": False})
        self._replace_steps(rows)

    def remove_canary_step(self, index: int) -> None:
        rows = self._raw_steps()
        if 0 <= index < len(rows) and len(rows) > 1:
            rows.pop(index)
        self._replace_steps(rows)

    def _raw_steps(self) -> list[dict]:
        rows = []
        for form in self.steps.forms:
            value = form.data.get if form.is_bound else (lambda key, default=None: None)
            initial = form.initial or {}
            rows.append(
                {
                    "weight": value(form.add_prefix("weight")) or initial.get("weight", ""),
                    "pause_seconds": value(form.add_prefix("pause_seconds")) or initial.get("pause_seconds", ""),
                    "analysis": _checked(value(form.add_prefix("analysis"))) if form.is_bound else initial.get("analysis", False),
                    "wait_for_promotion": (
                        _checked(value(form.add_prefix("wait_for_promotion")))
                        if form.is_bound
                        else initial.get("wait_for_promotion", False)
                    ),
                }
            )
        return rows

    def _replace_steps(self, rows: list[dict]) -> None:
        """Rebuild the step formset from `rows`, keeping every other posted field."""
        data = self.data.copy()
        for key in [key for key in data if key.startswith("steps-")]:
            del data[key]
        data.update({"steps-TOTAL_FORMS": str(len(rows)), "steps-INITIAL_FORMS": "0"})
        for index, row in enumerate(rows):
            data[f"steps-{index}-weight"] = str(row["weight"])
            data[f"steps-{index}-pause_seconds"] = str(row["pause_seconds"])
            if row["analysis"]:
                data[f"steps-{index}-analysis"] = "on"
            if row.get("wait_for_promotion"):
                data[f"steps-{index}-wait_for_promotion"] = "on"
        self.data = data
        self.steps = CanaryStepFormSet(data, prefix="steps")

    # --- results ---

    def plan_rows(self) -> list[PlanRow]:
        """Return the canary steps with the time each starts; steps that do not parse are left out."""
        interval = self._analysis_interval()
        rows, elapsed = [], self.startup_seconds
        for number, raw in enumerate(self._raw_steps(), start=1):
            try:
                weight = Decimal(str(raw["weight"]))
                pause = int(raw["pause_seconds"] or 0)
            except (ArithmeticError, ValueError):
                continue
            rows.append(PlanRow(number, weight, pause, bool(raw["analysis"]), bool(raw["wait_for_promotion"]), elapsed))
            elapsed += pause + (interval if raw["analysis"] else 0)
        self._plan_end = elapsed
        return rows

    def waits_for_person(self) -> bool:
        """Return whether the canary plan has a step that waits until a person promotes."""
        return self.is_canary and any(row["wait_for_promotion"] for row in self._raw_steps())

    @functools.cached_property
    def startup_seconds(self) -> int:
        """Estimated seconds until the candidate is ready, from earlier releases in the chosen environment.

        Cached, because the plan preview, the duration and the page each need it
        and every read is a database query.
        """
        target = self.forms["target"]
        environment = target.cleaned_data.get("environment_object") if target.is_bound and target.is_valid() else None
        return estimates.startup_seconds(environment)

    def estimated_seconds(self) -> int:
        if not self.is_canary:
            return self.startup_seconds
        self.plan_rows()
        return self._plan_end

    def _analysis_interval(self) -> int:
        form = self.forms["analysis"]
        if form.is_bound and form.is_valid():
            return form.cleaned_data["interval_seconds"]
        return DEFAULT_ANALYSIS_INTERVAL

    def version(self) -> ModelVersion | None:
        form = self.forms["version"]
        return form.cleaned_data.get("resolved") if form.is_bound and form.is_valid() else None

    def signature_check(self) -> SignatureCheck:
        """Compare the candidate's input signature with the version the endpoint serves now."""
        target = self.forms["target"]
        endpoint = target.cleaned_data.get("endpoint_object") if target.is_bound and target.is_valid() else None
        stable = current_stable_server(endpoint) if endpoint is not None else None
        candidate = self.version()
        if stable is None or candidate is None:
            return SignatureCheck(live_version=None, changes=[])
        comparison = compare.compare_versions(stable.version, candidate)
        return SignatureCheck(live_version=stable.version, changes=comparison.input_changes)

    def release_arguments(self) -> dict:
        """Return the keyword arguments for releases.create_release; call once every step is valid."""
        strategy = self.forms["strategy"].cleaned_data["strategy"]
        if strategy != Release.Strategy.CANARY:
            return {"strategy": strategy, "plan": {}, "analysis": {}}

        steps = []
        for form in self.steps.forms:
            steps.append({"weight": float(form.cleaned_data["weight"])})
            if form.cleaned_data["pause_seconds"]:
                steps.append({"pause": {"duration": form.cleaned_data["pause_seconds"]}})
            if form.cleaned_data["analysis"]:
                steps.append({"analysis": {}})
            if form.cleaned_data["wait_for_promotion"]:
                steps.append({"pause": {}})
        return {"strategy": strategy, "plan": {"steps": steps}, "analysis": self._analysis_settings()}

    def _analysis_settings(self) -> dict:
        if not self.runs_analysis:
            return {}
        thresholds = self.forms["analysis"].cleaned_data
        return {
            "window": thresholds["interval_seconds"],
            "min_requests": thresholds["min_requests"],
            "failure_limit": thresholds["failure_limit"],
            "metrics": [
                # The form takes percent; the release engine's error_rate is a fraction.
                {"metric": "error_rate", "max": float(thresholds["max_error_rate"]) / 100},
                {"metric": "latency_p95_ms", "max": thresholds["max_p95_latency_ms"]},
            ],
        }
