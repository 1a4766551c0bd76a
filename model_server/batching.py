"""Join requests that queue up at the same time into one predict call.

A scikit-learn predict costs about the same for 1 row as for 64, so when several
requests wait, one call for all of them saves most of the model time. The batcher
never waits to fill a batch: a request arriving at an idle server is predicted on
the next turn of the event loop, together with the requests that the same turn
parsed. Requests that arrive during a predict form the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from model_server.signature import InputTable

logger = logging.getLogger(__name__)


class _PendingRequest:
    __slots__ = ("model_input", "params", "rows", "future")

    def __init__(self, model_input: Any, params: dict[str, Any] | None, rows: int, future: asyncio.Future) -> None:
        self.model_input = model_input
        self.params = params
        self.rows = rows
        self.future = future


def count_rows(model_input: Any) -> int | None:
    """Return the row count of an input that can be joined with others, or None when it cannot."""
    if isinstance(model_input, InputTable):
        return model_input.n_rows
    if isinstance(model_input, np.ndarray) and model_input.ndim >= 1:
        return model_input.shape[0]
    return None


def _can_join(requests: Sequence[_PendingRequest]) -> bool:
    first = requests[0].model_input
    if isinstance(first, InputTable):
        return all(isinstance(request.model_input, InputTable) for request in requests)
    return all(
        isinstance(request.model_input, np.ndarray)
        and request.model_input.shape[1:] == first.shape[1:]
        and request.model_input.dtype == first.dtype
        for request in requests
    )


def _join(inputs: list[Any]) -> Any:
    if isinstance(inputs[0], InputTable):
        return InputTable.concatenate(inputs)
    return np.concatenate(inputs)


def _split(output: Any, rows: list[int]) -> list[Any]:
    """Cut a joined output into one part per request, or raise ValueError when its length does not match."""
    total = sum(rows)
    if len(output) != total:
        raise ValueError(f"the model returned {len(output)} rows for {total} input rows")

    parts = []
    start = 0
    is_pandas = type(output).__module__.startswith("pandas")
    for count in rows:
        stop = start + count
        parts.append(output.iloc[start:stop] if is_pandas else output[start:stop])
        start = stop
    return parts


class Batcher:
    """Run predictions for one model, joining requests that wait at the same time.

    ``inline`` runs predict on the event loop thread: fastest for models that
    predict in well under a millisecond, but the loop serves nothing else meanwhile.
    Otherwise predict runs on one worker thread, so health checks stay responsive
    while a slow model computes.
    """

    def __init__(
        self,
        predict: Callable[[Any, dict[str, Any] | None], Any],
        max_batch_rows: int,
        rows_are_independent: bool,
        inline: bool,
    ) -> None:
        self._predict = predict
        self._max_batch_rows = max_batch_rows if rows_are_independent else 0
        self._inline = inline
        self._pending: deque[_PendingRequest] = deque()
        self._scheduled = False
        self._executor = None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """Return the model output for one request; raise what the model raised for it."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        rows = count_rows(model_input) if params is None else None
        self._pending.append(_PendingRequest(model_input, params, rows if rows is not None else -1, future))

        if not self._scheduled:
            self._scheduled = True
            if self._inline:
                loop.call_soon(self._run_inline)
            else:
                loop.create_task(self._drain_in_thread())
        return await future

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _take_batch(self) -> list[_PendingRequest]:
        """Pop the next batch: joinable requests up to the row limit, or one request alone."""
        first = self._pending.popleft()
        batch = [first]
        if first.rows < 0 or self._max_batch_rows <= 1:
            return batch

        rows = first.rows
        while self._pending:
            candidate = self._pending[0]
            if candidate.rows < 0 or rows + candidate.rows > self._max_batch_rows:
                break
            batch.append(self._pending.popleft())
            rows += candidate.rows
        return batch

    def _run_inline(self) -> None:
        batch = self._take_batch()
        if self._pending:
            # Let the loop read other sockets before the next batch.
            asyncio.get_running_loop().call_soon(self._run_inline)
        else:
            self._scheduled = False

        results = self._run_batch(batch)
        for request, result in zip(batch, results):
            _resolve(request.future, result)

    async def _drain_in_thread(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._take_batch()
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
                for request, result in zip(batch, results):
                    _resolve(request.future, result)
        finally:
            self._scheduled = False

    def _run_batch(self, batch: list[_PendingRequest]) -> list[Any]:
        """Predict a batch and return one output or exception per request.

        When the joined call fails, each request is predicted alone, so that an
        input the model rejects fails only its own request.
        """
        if len(batch) > 1 and _can_join(batch):
            try:
                output = self._predict(_join([request.model_input for request in batch]), None)
                return _split(output, [request.rows for request in batch])
            except Exception as error:  # The model may raise anything; retry one by one below.
                logger.info("Batch of %d requests failed (%s); predicting them one by one", len(batch), error)

        results: list[Any] = []
        for request in batch:
            try:
                results.append(self._predict(request.model_input, request.params))
            except Exception as error:  # Passed on to the request's handler, which chooses the status.
                results.append(error)
        return results


def _resolve(future: asyncio.Future, result: Any) -> None:
    if future.done():  # The client went away and the handler was cancelled.
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
