"""Watch an instance's AMI events as Asterisk sends them (asyncio, as the rig's own user).

Every event carries Asterisk's ``Timestamp`` (manager.conf ``timestampevents``) and the rig
user also reads ``Cdr`` events, so a test can hold the gateway's record against Asterisk's
own view of a call: when each leg answered and hung up, and Asterisk's CDR.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .plan import RIG_SECRET, RIG_USER

Event = dict[str, str]


class AmiWatch:
    """``async with AmiWatch(port) as watch:`` ... ``await watch.wait_for(pred)``."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> AmiWatch:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(f"Action: Login\r\nUsername: {RIG_USER}\r\nSecret: {RIG_SECRET}\r\n"
                           "Events: on\r\nActionID: watch-login\r\n\r\n".encode())
        self._task = asyncio.get_running_loop().create_task(self._read(reader))
        await self.wait_for(lambda e: e.get("ActionID") == "watch-login" and e.get("Response") == "Success", 5)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        pending = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            pending += data
            *blocks, pending = pending.split(b"\r\n\r\n")
            for block in blocks:
                event: Event = {}
                for line in block.decode("utf-8", "replace").split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep and key not in event:
                        event[key] = value
                if event:
                    self.events.append(event)
            self._changed.set()

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """The first event (seen so far or still to come) for which ``predicate`` holds."""
        async def first() -> Event:
            seen = 0
            while True:
                self._changed.clear()
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                await self._changed.wait()
        return await asyncio.wait_for(first(), timeout)

    def leg_times(self, channel: str) -> tuple[float | None, float | None]:
        """Asterisk's own clock: when the channel was answered (Newstate Up) and hung up."""
        up = next((float(e["Timestamp"]) for e in self.events if e.get("Event") == "Newstate"
                   and e.get("Channel") == channel and e.get("ChannelStateDesc") == "Up"), None)
        down = next((float(e["Timestamp"]) for e in self.events if e.get("Event") == "Hangup"
                     and e.get("Channel") == channel), None)
        return up, down
