"""A sklearn model whose 'age' column is a long with required false: nulls must reach the model."""


def test_null_in_optional_long_returns_prediction(nullable_server):
    response = nullable_server.post("/invocations", {"dataframe_records": [{"age": None, "income": 65.0}]})
    assert response.json() == {"predictions": [1]}


def test_optional_long_column_may_be_left_out(nullable_server):
    response = nullable_server.post("/invocations", {"dataframe_records": [{"income": 35.0}]})
    assert response.json() == {"predictions": [0]}


def test_mixed_nulls_and_integers_return_predictions(nullable_server):
    body = {"dataframe_split": {"columns": ["age", "income"], "data": [[None, 65.0], [40, 35.0], [None, 35.0]]}}
    assert nullable_server.post("/invocations", body).json() == {"predictions": [1, 0, 0]}


def test_v2_null_in_optional_long_returns_prediction(nullable_server):
    tensors = [
        {"name": "age", "shape": [2], "datatype": "INT64", "data": [None, 30]},
        {"name": "income", "shape": [2], "datatype": "FP64", "data": [65.0, 35.0]},
    ]
    response = nullable_server.post("/v2/models/nullable/infer", {"inputs": tensors})
    assert response.json()["outputs"][0]["data"] == [1, 0]


def test_v2_output_uses_signature_output_name(nullable_server):
    tensors = [{"name": "age", "shape": [1], "datatype": "INT64", "data": [30]}, {"name": "income", "shape": [1], "datatype": "FP64", "data": [65.0]}]
    assert nullable_server.post("/v2/models/nullable/infer", {"inputs": tensors}).json()["outputs"][0]["name"] == "label"


def test_fraction_in_long_column_returns_400(nullable_server):
    response = nullable_server.post("/invocations", {"dataframe_records": [{"age": 30.5, "income": 65.0}]})
    assert response.status == 400


def test_fraction_in_long_column_message_names_column(nullable_server):
    response = nullable_server.post("/invocations", {"dataframe_records": [{"age": 30.5, "income": 65.0}]})
    assert response.json()["message"].startswith("column 'age': expected an integer (long)")


def test_null_in_required_double_returns_400(nullable_server):
    response = nullable_server.post("/invocations", {"dataframe_records": [{"age": 30, "income": None}]})
    assert response.json()["message"] == "column 'income': missing value in required column (row 0)"
