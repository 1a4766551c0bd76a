"""The main job end to end: register, deploy, predict, replace under load, roll back, predict."""

from __future__ import annotations

import pytest

from tests.conftest import zip_folder
from tests.integration.helpers import ENDPOINT, RequestStream, predict, register, release, wait_for_version

pytestmark = [pytest.mark.integration, pytest.mark.stack_env(PORTAL_SCALE_DOWN_DELAY="60")]


@pytest.fixture(scope="module")
def second_model_zip(tmp_path_factory):
    """A second, differently regularized version of the demo model."""
    from mlops_portal import demo

    folder = demo.save_model(tmp_path_factory.mktemp("v2") / "model", regularization=0.05)
    return zip_folder(folder, tmp_path_factory.mktemp("v2zip") / "model.zip")


def test_register_deploy_switch_rollback(stack, demo_model_zip, second_model_zip):
    version_1 = register(stack, "breast-cancer-classifier", demo_model_zip)
    assert version_1["status"] == "ready", version_1["status_reason"]

    first = release(stack, "breast-cancer-classifier", 1)
    assert first["state"] == "promoted", first["failure_reason"]

    payload = version_1["input_example"]
    wait_for_version(stack, payload, 1)
    response = predict(stack, payload)
    assert response.json()["predictions"] in ([0, 0], [0, 1], [1, 0], [1, 1])

    version_2 = register(stack, "breast-cancer-classifier", second_model_zip)
    assert version_2["status"] == "ready", version_2["status_reason"]

    with RequestStream(f"{stack.gateway_url}/endpoints/{ENDPOINT}/invocations", payload) as stream:
        stream.wait_for_requests(50)
        second = release(stack, "breast-cancer-classifier", 2)
        wait_for_version(stack, payload, 2)
        stream.wait_for_requests(sum(stream.statuses.values()) + 50)
    print(f"Requests during the switch to v2: {dict(stream.statuses)}, by version: {dict(stream.versions)}")
    assert second["state"] == "promoted", second["failure_reason"]
    assert stream.failures == 0, stream.errors[:5]
    assert stream.versions["2"] > 0

    rollback = stack.api.post(f"/api/v1/releases/{second['id']}/rollback/", json={"reason": "test rollback"})
    assert rollback.json()["state"] == "rolled_back", rollback.text
    wait_for_version(stack, payload, 1, timeout=5)
    assert predict(stack, payload).headers["x-model-version"] == "1"
