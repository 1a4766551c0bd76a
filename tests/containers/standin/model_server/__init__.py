"""A minimal stand-in for the project's model server, for container tests.

It accepts the same command line as `python -m model_server` and serves the
routes the Docker runtime and its tests use: `/ping`, `/v2/health/live`,
`/v2/health/ready` and `POST /invocations` with `dataframe_split`.
"""
