"""Run a coroutine's first step at once, and leave the rest to a task only
when it has to wait.

What Python 3.12's eager tasks do, for the one place Tact needs it on 3.11:
a coroutine that ends without waiting costs no task and no turn of the
event loop.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any


def start(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run `coro` up to its first wait.

    Returns (True, its result) if it finished without waiting, else
    (False, a coroutine that goes on from that wait) for the caller to await
    or hand to a task. An exception from the first step propagates.
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, _go_on(coro, waiting_on)


async def _go_on(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    # A native coroutine, which whatever checks for an Awaitable accepts.
    return await _resume(coro, waiting_on)


@types.coroutine
def _resume(
    coro: Coroutine[Any, Any, Any], waiting_on: Any
) -> Generator[Any, Any, Any]:
    """Hand the awaited object on to whoever drives this, then feed `coro`
    what comes back, as `await` would have done."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            # Cancellation among them: thrown into coro, as `await` would.
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting_on = coro.send(sent)
        except StopIteration as stop:
            return stop.value
