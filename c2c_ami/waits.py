"""Bounded waits, and tasks that never outlive their owner: every wait in the gateway has a
deadline, every background task is cancelled when its owner closes."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set, at most ``timeout`` seconds; True if it was."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class Background:
    """Fire-and-forget tasks, kept (so they are not garbage-collected) and cancelled together."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
