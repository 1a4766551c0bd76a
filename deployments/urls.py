from django.urls import path

from deployments.release_actions import ACTIONS
from deployments.views import actions, pages, wizard

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("endpoints/", pages.endpoint_list, name="endpoint-list"),
    path("endpoints/<slug:name>/", pages.endpoint_detail, name="endpoint-detail"),
    path("endpoints/<slug:name>/restore/", actions.endpoint_restore, name="endpoint-restore"),
    path("releases/", pages.release_list, name="release-list"),
    path("releases/new/", wizard.release_wizard, name="release-wizard"),
    path("releases/new/versions/", wizard.wizard_versions, name="release-wizard-versions"),
    path("releases/<int:release_id>/", pages.release_detail, name="release-detail"),
    path("releases/<int:release_id>/status/", pages.release_status, name="release-status"),
    path("releases/<int:release_id>/actions/", pages.release_actions, name="release-actions"),
    path("releases/<int:release_id>/metrics/", pages.release_metrics, name="release-metrics"),
    path("releases/<int:release_id>/build/", pages.release_build, name="release-build"),
    path("builds/<int:build_id>/log", pages.build_log, name="build-log"),
    # One route per action, so that the URL resolver lists each of them.
    *[
        path(
            f"releases/<int:release_id>/{action.name}/",
            actions.release_action,
            {"action_name": action.name},
            name=f"release-{action.name}",
        )
        for action in ACTIONS
    ],
]
