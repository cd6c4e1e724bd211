"""A small Server-Sent Events reader for the tests: an aiohttp response in, events out (as a
browser's EventSource reads them: ``id``, ``event``, ``data`` lines, a blank line ends one;
comments, i.e. heartbeats, and ``retry`` are skipped)."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    id: str | None
    event: str
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    def __init__(self, response) -> None:
        self.response = response
        self.comments = 0

    async def next(self, timeout: float = 5.0) -> Event:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Event:
        fields: dict[str, list[str]] = {}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if "data" in fields or "event" in fields:
                    return Event(fields.get("id", [None])[-1], fields.get("event", ["message"])[-1],
                                 "\n".join(fields.get("data", [])))
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)

    async def until(self, predicate, timeout: float = 5.0) -> list[Event]:
        """Every event up to and including the first that ``predicate`` accepts."""
        seen: list[Event] = []

        async def read():
            while True:
                event = await self._next()
                seen.append(event)
                if predicate(event):
                    return seen
        return await asyncio.wait_for(read(), timeout)
