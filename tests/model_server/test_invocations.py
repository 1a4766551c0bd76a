"""POST /invocations: MLflow scoring payloads and their errors."""

import pytest


def split(example, row=None, columns=None):
    return {"dataframe_split": {"columns": columns or example["columns"], "data": [row or example["row"]]}}


def record(example):
    return dict(zip(example["columns"], example["row"]))


def test_dataframe_split_returns_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/invocations", split(breast_cancer_example))
    assert response.json() == {"predictions": [0]}


def test_dataframe_split_reordered_columns_returns_same_prediction(breast_cancer_server, breast_cancer_example):
    columns = list(reversed(breast_cancer_example["columns"]))
    row = list(reversed(breast_cancer_example["row"]))
    response = breast_cancer_server.post("/invocations", split(breast_cancer_example, row, columns))
    assert response.json() == {"predictions": [0]}


def test_dataframe_records_returns_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/invocations", {"dataframe_records": [record(breast_cancer_example)] * 3})
    assert response.json() == {"predictions": [0, 0, 0]}


def test_inputs_columns_object_returns_prediction(breast_cancer_server, breast_cancer_example):
    columns = {name: [value] for name, value in record(breast_cancer_example).items()}
    assert breast_cancer_server.post("/invocations", {"inputs": columns}).json() == {"predictions": [0]}


def test_inputs_positional_rows_return_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/invocations", {"inputs": [breast_cancer_example["row"]]})
    assert response.json() == {"predictions": [0]}


def test_instances_records_return_prediction(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/invocations", {"instances": [record(breast_cancer_example)]})
    assert response.json() == {"predictions": [0]}


def test_csv_returns_prediction(breast_cancer_server, breast_cancer_example):
    header = ",".join(f'"{name}"' for name in breast_cancer_example["columns"])
    values = ",".join(str(value) for value in breast_cancer_example["row"])
    response = breast_cancer_server.post("/invocations", f"{header}\n{values}\n".encode(), "text/csv")
    assert response.json() == {"predictions": [0]}


def test_csv_invalid_number_names_column(breast_cancer_server, breast_cancer_example):
    header = ",".join(f'"{name}"' for name in breast_cancer_example["columns"])
    values = ",".join(["abc"] + [str(value) for value in breast_cancer_example["row"][1:]])
    response = breast_cancer_server.post("/invocations", f"{header}\n{values}\n".encode(), "text/csv")
    assert "'mean radius'" in response.json()["message"]


def test_json_content_type_with_charset_is_accepted(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/invocations", split(breast_cancer_example), "application/json; charset=utf-8")
    assert response.status == 200


def test_missing_column_returns_400(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example)
    del row["mean area"]
    assert breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).status == 400


def test_missing_column_message_names_column(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example)
    del row["mean area"]
    message = breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).json()["message"]
    assert message == "missing required column 'mean area'"


def test_wrong_type_returns_400(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example) | {"mean texture": "high"}
    assert breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).status == 400


def test_wrong_type_message_names_column(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example) | {"mean texture": "high"}
    message = breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).json()["message"]
    assert message.startswith("column 'mean texture': expected a number (double)")


def test_null_in_required_column_returns_400(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example) | {"worst area": None}
    assert breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).status == 400


def test_null_in_required_column_message_names_column(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example) | {"worst area": None}
    message = breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).json()["message"]
    assert message == "column 'worst area': missing value in required column (row 0)"


def test_error_has_bad_request_code(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example) | {"worst area": None}
    body = breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).json()
    assert body["error_code"] == "BAD_REQUEST"


def test_unknown_column_is_ignored(breast_cancer_server, breast_cancer_example):
    row = record(breast_cancer_example) | {"patient id": "p-17"}
    assert breast_cancer_server.post("/invocations", {"dataframe_records": [row]}).json() == {"predictions": [0]}


def test_short_row_returns_400(breast_cancer_server, breast_cancer_example):
    response = breast_cancer_server.post("/invocations", split(breast_cancer_example, breast_cancer_example["row"][:-1]))
    assert response.status == 400


def test_invalid_json_returns_400(breast_cancer_server):
    assert breast_cancer_server.post("/invocations", b'{"dataframe_split": ').status == 400


def test_invalid_json_message_says_invalid_json(breast_cancer_server):
    assert breast_cancer_server.post("/invocations", b"{oops").json()["message"].startswith("invalid JSON")


def test_no_input_key_returns_400(breast_cancer_server):
    assert breast_cancer_server.post("/invocations", {"rows": []}).status == 400


def test_two_input_keys_return_400(breast_cancer_server, breast_cancer_example):
    body = split(breast_cancer_example) | {"inputs": [breast_cancer_example["row"]]}
    assert breast_cancer_server.post("/invocations", body).status == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_unsupported_content_type_returns_415(breast_cancer_server, breast_cancer_example, content_type):
    response = breast_cancer_server.post("/invocations", split(breast_cancer_example), content_type)
    assert response.status == 415


def test_error_response_has_no_traceback(breast_cancer_server):
    assert b"Traceback" not in breast_cancer_server.post("/invocations", b"[1, 2").body


def test_many_rows_return_one_prediction_each(breast_cancer_server, breast_cancer_example):
    body = {"dataframe_split": {"columns": breast_cancer_example["columns"], "data": [breast_cancer_example["row"]] * 200}}
    assert len(breast_cancer_server.post("/invocations", body).json()["predictions"]) == 200
