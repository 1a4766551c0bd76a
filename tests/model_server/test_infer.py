"""POST /v2/models/{name}/infer: Open Inference Protocol v2 tensors and their errors."""

from concurrent.futures import ThreadPoolExecutor

INFER = "/v2/models/breast-cancer/infer"


def column_tensors(example):
    return [{"name": name, "shape": [1], "datatype": "FP64", "data": [value]} for name, value in zip(example["columns"], example["row"])]


def matrix_tensor(example, rows=1):
    return {"name": "input-0", "shape": [rows, 30], "datatype": "FP64", "data": example["row"] * rows}


def test_column_tensors_return_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post(INFER, {"inputs": column_tensors(breast_cancer_example)})
    assert response.json()["outputs"][0]["data"] == [0]


def test_matrix_tensor_returns_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post(INFER, {"inputs": [matrix_tensor(breast_cancer_example)]})
    assert response.json()["outputs"][0]["data"] == [0]


def test_nested_matrix_data_returns_prediction(breast_cancer_server, breast_cancer_example):
    tensor = matrix_tensor(breast_cancer_example) | {"data": [breast_cancer_example["row"]]}
    assert breast_cancer_server.post(INFER, {"inputs": [tensor]}).json()["outputs"][0]["data"] == [0]


def test_response_output_tensor_has_shape_and_datatype(breast_cancer_server, breast_cancer_example):
    output = breast_cancer_server.post(INFER, {"inputs": [matrix_tensor(breast_cancer_example, rows=2)]}).json()["outputs"][0]
    assert output == {"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 0]}


def test_response_names_model_and_version(breast_cancer_server, breast_cancer_example):
    body = breast_cancer_server.post(INFER, {"inputs": [matrix_tensor(breast_cancer_example)]}).json()
    assert (body["model_name"], body["model_version"]) == ("breast-cancer", "1")


def test_response_echoes_request_id(breast_cancer_server, breast_cancer_example):
    body = breast_cancer_server.post(INFER, {"id": "req-42", "inputs": [matrix_tensor(breast_cancer_example)]}).json()
    assert body["id"] == "req-42"


def test_versioned_infer_route_returns_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/v2/models/breast-cancer/versions/1/infer", {"inputs": [matrix_tensor(breast_cancer_example)]})
    assert response.status == 200


def test_missing_column_tensor_returns_400(breast_cancer_server, breast_cancer_example):
    tensors = [tensor for tensor in column_tensors(breast_cancer_example) if tensor["name"] != "worst symmetry"]
    assert breast_cancer_server.post(INFER, {"inputs": tensors}).status == 400


def test_missing_column_tensor_message_names_column(breast_cancer_server, breast_cancer_example):
    tensors = [tensor for tensor in column_tensors(breast_cancer_example) if tensor["name"] != "worst symmetry"]
    assert breast_cancer_server.post(INFER, {"inputs": tensors}).json()["error"] == "missing required column 'worst symmetry'"


def test_string_in_fp64_tensor_returns_400(breast_cancer_server, breast_cancer_example):
    tensors = column_tensors(breast_cancer_example)
    tensors[2]["data"] = ["wide"]
    assert breast_cancer_server.post(INFER, {"inputs": tensors}).status == 400


def test_string_in_fp64_tensor_message_names_tensor(breast_cancer_server, breast_cancer_example):
    tensors = column_tensors(breast_cancer_example)
    tensors[2]["data"] = ["wide"]
    assert "'mean perimeter'" in breast_cancer_server.post(INFER, {"inputs": tensors}).json()["error"]


def test_bytes_tensor_for_double_column_names_column(breast_cancer_server, breast_cancer_example):
    tensors = column_tensors(breast_cancer_example)
    tensors[0] = {"name": "mean radius", "shape": [1], "datatype": "BYTES", "data": ["17.99"]}
    message = breast_cancer_server.post(INFER, {"inputs": tensors}).json()["error"]
    assert message.startswith("column 'mean radius': expected a number (double)")


def test_null_in_required_column_returns_400(breast_cancer_server, breast_cancer_example):
    tensors = column_tensors(breast_cancer_example)
    tensors[5]["data"] = [None]
    assert breast_cancer_server.post(INFER, {"inputs": tensors}).status == 400


def test_null_in_required_column_message_names_column(breast_cancer_server, breast_cancer_example):
    tensors = column_tensors(breast_cancer_example)
    tensors[5]["data"] = [None]
    message = breast_cancer_server.post(INFER, {"inputs": tensors}).json()["error"]
    assert message == "column 'mean compactness': missing value in required column (row 0)"


def test_shape_data_mismatch_returns_400(breast_cancer_server, breast_cancer_example):
    tensor = matrix_tensor(breast_cancer_example) | {"shape": [2, 30]}
    assert breast_cancer_server.post(INFER, {"inputs": [tensor]}).status == 400


def test_shape_data_mismatch_message_names_tensor(breast_cancer_server, breast_cancer_example):
    tensor = matrix_tensor(breast_cancer_example) | {"shape": [2, 30]}
    message = breast_cancer_server.post(INFER, {"inputs": [tensor]}).json()["error"]
    assert message == "tensor 'input-0': shape [2, 30] needs 60 values, got 30"


def test_matrix_with_wrong_column_count_returns_400(breast_cancer_server, breast_cancer_example):
    tensor = {"name": "input-0", "shape": [1, 29], "datatype": "FP64", "data": breast_cancer_example["row"][:29]}
    assert breast_cancer_server.post(INFER, {"inputs": [tensor]}).status == 400


def test_unknown_datatype_returns_400(breast_cancer_server, breast_cancer_example):
    tensor = matrix_tensor(breast_cancer_example) | {"datatype": "DOUBLE"}
    assert breast_cancer_server.post(INFER, {"inputs": [tensor]}).status == 400


def test_empty_inputs_return_400(breast_cancer_server):
    assert breast_cancer_server.post(INFER, {"inputs": []}).status == 400


def test_invalid_json_returns_400(breast_cancer_server):
    assert breast_cancer_server.post(INFER, b"{").status == 400


def test_invalid_json_error_is_json(breast_cancer_server):
    assert breast_cancer_server.post(INFER, b"{").json()["error"].startswith("invalid JSON")


def test_non_json_content_type_returns_415(breast_cancer_server, breast_cancer_example):
    assert breast_cancer_server.post(INFER, {"inputs": [matrix_tensor(breast_cancer_example)]}, "text/csv").status == 415


def test_concurrent_requests_each_get_own_prediction(breast_cancer_server, breast_cancer_example):
    """Requests that the server joins into one predict call still get their own rows back."""

    def infer(rows):
        body = {"id": str(rows), "inputs": [matrix_tensor(breast_cancer_example, rows=rows)]}
        return breast_cancer_server.post(INFER, body).json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(infer, [1 + index % 5 for index in range(64)]))
    assert all(len(reply["outputs"][0]["data"]) == int(reply["id"]) for reply in replies)
