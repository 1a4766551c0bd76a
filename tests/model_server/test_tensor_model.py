"""A sklearn model with a tensor-based signature (fitted on a numpy array)."""

from concurrent.futures import ThreadPoolExecutor

SETOSA = [5.1, 3.5, 1.4, 0.2]


def test_inputs_nested_list_returns_prediction(tensor_server):
    assert tensor_server.post("/invocations", {"inputs": [SETOSA]}).json() == {"predictions": [0]}


def test_v2_tensor_returns_prediction(tensor_server):
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}
    assert tensor_server.post("/v2/models/iris/infer", {"inputs": [tensor]}).json()["outputs"][0]["data"] == [0]


def test_wrong_tensor_shape_returns_400(tensor_server):
    assert tensor_server.post("/invocations", {"inputs": [SETOSA[:3]]}).status == 400


def test_wrong_tensor_shape_message_gives_shapes(tensor_server):
    message = tensor_server.post("/invocations", {"inputs": [SETOSA[:3]]}).json()["message"]
    assert message == "tensor: expected shape [-1, 4], got [1, 3]"


def test_dataframe_records_returns_400(tensor_server):
    assert tensor_server.post("/invocations", {"dataframe_records": [{"a": 1}]}).status == 400


def test_concurrent_requests_each_get_own_rows(tensor_server):
    def infer(rows):
        return len(tensor_server.post("/invocations", {"inputs": [SETOSA] * rows}).json()["predictions"]) == rows

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert all(pool.map(infer, [1 + index % 4 for index in range(48)]))
