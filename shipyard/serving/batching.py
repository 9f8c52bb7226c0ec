"""Adaptive batching inside a worker: rows of concurrent requests share one model call.

BentoML's own adaptive batching merges requests at the API boundary, before Shipyard has
authenticated, routed and looked up features per request. This batcher runs after routing,
per model variant, so every request keeps its own variant, log record and request id.

A model call of a scikit-learn pipeline costs about the same for 1 row as for 100, so
merging the requests that are already waiting saves CPU without adding latency
(`max_latency_ms: 0`, the default); a positive `max_latency_ms` waits that long for more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Row = TypeVar("Row")
Out = TypeVar("Out")


class MicroBatcher(Generic[Row, Out]):
    """Collects rows on the event loop and runs `predict` once per batch, on the loop thread.

    `predict` takes a list of rows and returns one output per row. It runs inline: a
    scikit-learn call is short, and a thread hand-off would cost more than it saves.
    """

    def __init__(
        self,
        predict: Callable[[list[Row]], Sequence[Out]],
        max_batch_size: int,
        max_latency_ms: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._predict = predict
        self._max = max_batch_size
        self._delay = max_latency_ms / 1000.0
        self._on_batch = on_batch
        self._pending: list[tuple[list[Row], asyncio.Future[list[Out]]]] = []
        self._size = 0
        self._scheduled = False

    async def submit(self, rows: list[Row]) -> list[Out]:
        """Predict `rows`, possibly together with other requests' rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Out]] = loop.create_future()
        self._pending.append((rows, future))
        self._size += len(rows)
        if self._size >= self._max:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            if self._delay > 0:
                loop.call_later(self._delay, self._flush)
            else:
                loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending, self._size = self._pending, [], 0
        if not pending:
            return
        batch: list[Row] = [row for rows, _ in pending for row in rows]
        try:
            outputs = list(self._predict(batch))
        except Exception as exc:  # every waiting request learns what went wrong
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch))
        start = 0
        for rows, future in pending:
            end = start + len(rows)
            if not future.done():  # a cancelled request (client went away) is skipped
                future.set_result(outputs[start:end])
            start = end


def run_unbatched(
    predict: Callable[[list[Any]], Sequence[Any]],
    on_batch: Callable[[int], None] | None = None,
) -> Callable[..., Any]:
    """The same interface without merging: used when `batching.adaptive` is off."""

    async def submit(rows: list[Any]) -> list[Any]:
        outputs = list(predict(rows))
        if on_batch is not None:
            on_batch(len(rows))
        return outputs

    return submit
