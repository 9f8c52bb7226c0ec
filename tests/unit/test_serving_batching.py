"""Adaptive batching: concurrent requests share a model call and each gets its own rows back."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.serving.batching import MicroBatcher, run_unbatched


class Model:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail

    def __call__(self, rows: list[int]) -> list[int]:
        self.calls.append(list(rows))
        if self.fail:
            raise RuntimeError("model exploded")
        return [row * 10 for row in rows]


def test_requests_waiting_together_share_one_call_and_get_their_own_rows() -> None:
    model, sizes = Model(), []
    batcher = MicroBatcher(model, max_batch_size=100, on_batch=sizes.append)

    async def main() -> list[list[int]]:
        return await asyncio.gather(
            batcher.submit([1, 2]), batcher.submit([3]), batcher.submit([4, 5, 6])
        )

    assert asyncio.run(main()) == [[10, 20], [30], [40, 50, 60]]
    assert model.calls == [[1, 2, 3, 4, 5, 6]] and sizes == [6]


def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_batch_size=3)

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(batcher.submit([i]) for i in range(5)))

    assert asyncio.run(main()) == [[0], [10], [20], [30], [40]]
    assert model.calls == [[0, 1, 2], [3, 4]]


def test_max_latency_waits_for_later_requests() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_batch_size=100, max_latency_ms=300)

    async def main() -> list[list[int]]:
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.01)  # arrives well inside the first request's wait
        second = asyncio.ensure_future(batcher.submit([2]))
        return [await first, await second]

    assert asyncio.run(main()) == [[10], [20]]
    assert model.calls == [[1, 2]]


def test_a_model_error_reaches_every_waiting_request() -> None:
    batcher = MicroBatcher(Model(fail=True), max_batch_size=10)

    async def main() -> list[object]:
        return await asyncio.gather(
            batcher.submit([1]), batcher.submit([2]), return_exceptions=True
        )

    assert [str(e) for e in asyncio.run(main())] == ["model exploded"] * 2


def test_a_cancelled_request_does_not_disturb_the_others() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_batch_size=10)

    async def main() -> list[int]:
        gone = asyncio.ensure_future(batcher.submit([1]))
        kept = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == [20]


def test_unbatched_calls_the_model_per_request_and_counts_each() -> None:
    model, sizes = Model(), []
    submit = run_unbatched(model, on_batch=sizes.append)

    async def main() -> list[list[int]]:
        return await asyncio.gather(submit([1, 2]), submit([3]))

    assert asyncio.run(main()) == [[10, 20], [30]]
    assert model.calls == [[1, 2], [3]] and sizes == [2, 1]


@pytest.mark.parametrize("adaptive", [True, False])
def test_no_batch_is_counted_when_the_model_fails(adaptive: bool) -> None:
    sizes: list[int] = []
    model = Model(fail=True)
    submit = (
        MicroBatcher(model, max_batch_size=10, on_batch=sizes.append).submit
        if adaptive
        else run_unbatched(model, on_batch=sizes.append)
    )
    with pytest.raises(RuntimeError):
        asyncio.run(submit([1]))
    assert sizes == []
