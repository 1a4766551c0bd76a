"""Logging for the gateway: one format for every process, and rate limits for repeated failures."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("gateway")


def logging_config(level: str) -> dict[str, Any]:
    """Build the logging.config dict that uvicorn applies in the parent and in each worker.

    Every line carries the process id, because each worker polls and reports for itself.
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "gateway": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


class RepeatedFailureLog:
    """Log the first failure of a kind, then at most one summary per interval, and the recovery.

    A portal that is down for an hour would otherwise write 18,000 lines at the default
    poll interval of 0.2 s.
    """

    def __init__(self, operation: str, interval_seconds: float = 30.0) -> None:
        self.operation = operation
        self.interval_seconds = interval_seconds
        self.failures = 0
        self._suppressed = 0
        self._last_logged = 0.0

    def failure(self, message: str, exc_info: bool = False) -> None:
        """Count one failure; `exc_info` adds the current traceback to the lines that are logged."""
        self.failures += 1
        now = time.monotonic()

        if self.failures == 1:
            log.warning("%s failed: %s", self.operation, message, exc_info=exc_info)
            self._last_logged = now
        elif now - self._last_logged >= self.interval_seconds:
            log.warning(
                "%s failed: %s (%d more failures since the last message)",
                self.operation, message, self._suppressed, exc_info=exc_info,
            )
            self._last_logged = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def success(self) -> None:
        if self.failures:
            log.info("%s succeeded again after %d failures", self.operation, self.failures)
        self.failures = 0
        self._suppressed = 0
