"""Health, metadata and routing of a running server with the breast-cancer pipeline."""

import pytest


@pytest.mark.parametrize("path", ["/ping", "/health", "/v2/health/live", "/v2/health/ready", "/v2/models/breast-cancer/ready"])
def test_health_route_returns_200(breast_cancer_server, path):
    assert breast_cancer_server.get(path).status == 200


def test_v2_ready_names_model(breast_cancer_server):
    assert breast_cancer_server.get("/v2/models/breast-cancer/ready").json() == {"name": "breast-cancer", "ready": True}


def test_v2_metadata_names_model(breast_cancer_server):
    assert breast_cancer_server.get("/v2/models/breast-cancer").json()["name"] == "breast-cancer"


def test_v2_metadata_lists_version(breast_cancer_server):
    assert breast_cancer_server.get("/v2/models/breast-cancer").json()["versions"] == ["1"]


def test_v2_metadata_platform_is_sklearn(breast_cancer_server):
    assert breast_cancer_server.get("/v2/models/breast-cancer").json()["platform"] == "mlflow-sklearn"


def test_v2_metadata_inputs_follow_signature(breast_cancer_server, breast_cancer_example):
    inputs = breast_cancer_server.get("/v2/models/breast-cancer").json()["inputs"]
    assert [tensor["name"] for tensor in inputs] == breast_cancer_example["columns"]


def test_v2_metadata_input_datatype_is_fp64(breast_cancer_server):
    inputs = breast_cancer_server.get("/v2/models/breast-cancer").json()["inputs"]
    assert inputs[0] == {"name": "mean radius", "datatype": "FP64", "shape": [-1]}


def test_v2_metadata_outputs_are_int64(breast_cancer_server):
    outputs = breast_cancer_server.get("/v2/models/breast-cancer").json()["outputs"]
    assert outputs == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]


def test_versioned_metadata_route_returns_200(breast_cancer_server):
    assert breast_cancer_server.get("/v2/models/breast-cancer/versions/1").status == 200


def test_unknown_version_returns_404(breast_cancer_server):
    assert breast_cancer_server.get("/v2/models/breast-cancer/versions/9/ready").status == 404


def test_metadata_contains_signature(breast_cancer_server):
    signature = breast_cancer_server.get("/metadata").json()["signature"]
    assert signature["inputs"][0] == {"type": "double", "name": "mean radius", "required": True}


def test_metadata_contains_input_example(breast_cancer_server, breast_cancer_example):
    example = breast_cancer_server.get("/metadata").json()["input_example"]
    assert example["data"][0] == breast_cancer_example["row"]


def test_metadata_reports_float_matrix_input(breast_cancer_server):
    assert breast_cancer_server.get("/metadata").json()["input_form"] == "float matrix"


@pytest.mark.parametrize("path", ["/v2/models/other", "/v2/models/other/ready"])
def test_unknown_model_returns_404(breast_cancer_server, path):
    assert breast_cancer_server.get(path).status == 404


def test_unknown_model_infer_returns_404(breast_cancer_server):
    assert breast_cancer_server.post("/v2/models/other/infer", {"inputs": []}).status == 404


def test_unknown_model_message_names_model(breast_cancer_server):
    assert "'other'" in breast_cancer_server.get("/v2/models/other").json()["error"]


def test_unknown_path_returns_404(breast_cancer_server):
    assert breast_cancer_server.get("/nowhere").status == 404


def test_get_invocations_returns_405(breast_cancer_server):
    assert breast_cancer_server.get("/invocations").status == 405
