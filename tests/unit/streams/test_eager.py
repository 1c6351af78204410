"""Running a coroutine's first step at once."""

from __future__ import annotations

import asyncio

import pytest

from app.streams import eager


async def test_a_coroutine_that_never_waits_finishes_in_the_callers_task() -> None:
    ran_in: list[asyncio.Task[object] | None] = []

    async def deliver() -> str:
        ran_in.append(asyncio.current_task())
        return "delivered"

    is_done, outcome = eager.start(deliver())

    assert (is_done, outcome) == (True, "delivered")
    assert ran_in == [asyncio.current_task()]


async def test_a_coroutine_that_waits_goes_on_where_it_stopped() -> None:
    steps: list[str] = []
    ready = asyncio.Event()

    async def deliver() -> str:
        steps.append("before the wait")
        await ready.wait()
        steps.append("after the wait")
        return "delivered"

    is_done, rest = eager.start(deliver())
    assert not is_done
    assert steps == ["before the wait"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()

    ready.set()

    assert await task == "delivered"
    assert steps == ["before the wait", "after the wait"]


async def test_cancelling_the_rest_cancels_the_coroutine_at_its_wait() -> None:
    cleaned_up = asyncio.Event()

    async def deliver() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()

    _, rest = eager.start(deliver())
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()


async def test_an_error_of_the_first_step_reaches_the_caller() -> None:
    async def deliver() -> None:
        raise LookupError("no stream for this partition")

    with pytest.raises(LookupError, match="no stream"):
        eager.start(deliver())


async def test_an_error_after_the_wait_reaches_whoever_awaits_the_rest() -> None:
    ready = asyncio.Event()

    async def deliver() -> None:
        await ready.wait()
        raise LookupError("no stream for this partition")

    _, rest = eager.start(deliver())
    ready.set()

    with pytest.raises(LookupError, match="no stream"):
        await rest
