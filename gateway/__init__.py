"""Prediction gateway: splits each endpoint's traffic between model server versions.

Run it with `python -m gateway`. It imports nothing from Django, so it starts fast and
can run in its own container.
"""
