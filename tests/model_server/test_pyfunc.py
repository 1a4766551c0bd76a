"""A generic mlflow.pyfunc.PythonModel (no sklearn flavor) served through mlflow.pyfunc.load_model."""


def test_metadata_reports_pyfunc_flavor(pyfunc_server):
    assert pyfunc_server.get("/metadata").json()["flavor"] == "mlflow.pyfunc.model"


def test_records_return_dataframe_as_records(pyfunc_server):
    response = pyfunc_server.post("/invocations", {"dataframe_records": [{"age": 30, "city": "Oslo"}]})
    assert response.json() == {"predictions": [{"next_age": 31.0, "rows": 1}]}


def test_null_in_nullable_long_reaches_model(pyfunc_server):
    response = pyfunc_server.post("/invocations", {"dataframe_records": [{"age": None, "city": "Oslo"}, {"age": 4, "city": "Rome"}]})
    assert response.json()["predictions"][0]["next_age"] == -1.0


def test_v2_dataframe_output_becomes_one_tensor_per_column(pyfunc_server):
    tensors = [
        {"name": "age", "shape": [2], "datatype": "INT64", "data": [None, 4]},
        {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["Oslo", "Rome"]},
    ]
    outputs = pyfunc_server.post("/v2/models/ages/infer", {"inputs": tensors}).json()["outputs"]
    assert [output["name"] for output in outputs] == ["next_age", "rows"]


def test_number_in_string_column_message_names_column(pyfunc_server):
    response = pyfunc_server.post("/invocations", {"dataframe_records": [{"age": 3, "city": 12}]})
    assert response.json()["message"].startswith("column 'city': expected a string")


def test_missing_string_column_returns_400(pyfunc_server):
    assert pyfunc_server.post("/invocations", {"dataframe_records": [{"age": 3}]}).status == 400


def test_v2_metadata_platform_names_loader(pyfunc_server):
    assert pyfunc_server.get("/v2/models/ages").json()["platform"] == "mlflow-mlflow.pyfunc.model"
