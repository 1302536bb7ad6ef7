"""Storage calls stay bounded by ``timeout`` in total without a timer per call (deadlines.Deadlines)."""

from __future__ import annotations

import asyncio

import pytest

from tframex_asgi.ratelimit.deadlines import Deadlines


async def test_a_slow_call_times_out_and_fast_ones_do_not() -> None:
    deadlines = Deadlines()

    async def slow() -> int:
        await asyncio.sleep(5)
        return 1

    async def fast() -> int:
        await asyncio.sleep(0)
        return 2

    calls = asyncio.gather(
        deadlines.run(slow, 0.1), *(deadlines.run(fast, 0.1) for _ in range(50)), return_exceptions=True
    )
    results = await asyncio.wait_for(calls, 30)  # a broken deadline fails here instead of hanging
    assert isinstance(results[0], TimeoutError) and results[1:] == [2] * 50
    assert not deadlines._watches
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_each_call_gets_its_own_deadline() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    ends: list[float] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            ends.append(loop.time())

    async def later() -> None:
        await asyncio.sleep(0.15)
        await deadlines.run(slow, 0.2)

    calls = asyncio.gather(deadlines.run(slow, 0.2), later(), return_exceptions=True)
    results = await asyncio.wait_for(calls, 30)
    assert all(isinstance(r, TimeoutError) for r in results)
    assert ends[0] < ends[1]  # the second call's deadline was its own, not the first one's


async def test_an_outside_cancellation_is_not_turned_into_a_timeout() -> None:
    deadlines = Deadlines()

    async def slow() -> None:
        await asyncio.sleep(5)

    task = asyncio.ensure_future(deadlines.run(slow, 10.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._watches


async def test_a_call_that_swallows_the_cancel_leaves_no_pending_cancel() -> None:
    deadlines = Deadlines()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "done anyway"
        return "slept"

    assert await deadlines.run(stubborn, 0.05) == "done anyway"  # "slept" if the deadline never fired
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0.01)  # no stray CancelledError arrives later
