"""The event stream's fan-out on one instance (GET /v1/events/stream).

Every event goes through the store's event log (``Storage.log_events`` and the reporter's
batch transaction write it; each tenant's rows have their own increasing ``seq``), so a
stream on any instance sees every event of its tenant, whichever instance wrote it. When a
tenant's log grows the store notifies every instance (PostgreSQL NOTIFY; in-process on
SQLite); each instance then reads the new rows **once**, for all its streams of all tenants
(one query: ``Storage.read_events``), turns each into its SSE frame once, and keeps the last
``buffer`` frames of each tenant it streams in a ring. A stream holds no frames of its own:
only its cursor (the last ``seq`` it sent) and a wake-up event; it writes the ring's frames
after its cursor at its own pace, so a slow client holds up nobody. One that falls so far
behind that the ring no longer holds its next frame is dropped: it resumes with
``Last-Event-ID`` from the store, like any client that reconnects.

A stream that resumes (``Last-Event-ID``) reads what it missed from the store first, page by
page, then joins the ring; an id older than the tenant's retention (purged) or unknown gets
an explicit ``reset`` event instead (the client reloads its state). Every notification is
backed by a poll every ``POLL_SECONDS`` (a notification lost with a database connection is
late, never lost).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RateLimited, StoreUnavailable
from ..store import EVENTS_CHANNEL, Storage, StorageUnavailable, store_needed
from ..waits import Background

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0          # read the streamed tenants' logs at least this often (a lost NOTIFY)
READ_BATCH = 500            # rows per read of the log (for every streamed tenant together)
CATCH_UP_PAGE = 500         # rows per read of a resuming stream
PURGE_EVERY = 60.0          # seconds between two purges of the log
PURGE_BATCH = 5000
SEP = b"\r\n"               # aiohttp-sse's line separator


def frame(seq: int, event: str, data: str) -> bytes:
    """One SSE event on the wire, as aiohttp-sse's ``send(data, id=seq, event=event)`` writes it
    (``data`` is one line of JSON: no line breaks to split)."""
    return b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (seq, event.encode(), data.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    ext: str | None
    wire: bytes


def frame_of(row: dict[str, Any]) -> Frame:
    return Frame(int(row["seq"]), row["ext"], frame(int(row["seq"]), row["event"], row["data"]))


class Dropped(Exception):
    """The stream fell behind the ring (or the hub is closing): the client resumes."""


@dataclass(eq=False)
class _Feed:
    """One tenant's log as this instance streams it."""
    cursor: int = -1                         # last seq read into the ring; -1 while opening
    ring: deque[Frame] = field(default_factory=deque)
    subscribers: set[Subscriber] = field(default_factory=set)
    dirty: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False, slots=True)
class Subscriber:
    """One open stream: its tenant, its extension (a scoped token's), where it is."""
    tenant: str
    ext: str | None
    feed: _Feed
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def sees(self, f: Frame) -> bool:
        return self.ext is None or f.ext == self.ext


Write = Callable[[bytes], Awaitable[None]]


class EventHub:
    def __init__(self, storage: Storage, *, buffer: int = 1000, retention: float = 3600.0,
                 max_streams: int = 10000, max_streams_per_tenant: int = 1000) -> None:
        self.storage = storage
        self.buffer = buffer
        self.retention = retention
        self.max_streams = max_streams
        self.max_streams_per_tenant = max_streams_per_tenant
        self._feeds: dict[str, _Feed] = {}
        self._streams = 0
        self._wake = asyncio.Event()
        self._background = Background()
        self.frames_read = 0                # rows read from the log (metrics, bench)
        self.frames_sent = 0                # frames written to streams
        self.dropped = 0                    # streams dropped for lagging

    @property
    def streams(self) -> int:
        return self._streams

    # -- life ------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.storage.listen(EVENTS_CHANNEL, self._notified)
        self._background.spawn(self._read_loop())
        self._background.spawn(self._purge_loop())

    async def close(self) -> None:
        """End every stream (shutdown), then stop reading."""
        for feed in self._feeds.values():
            for sub in feed.subscribers:
                sub.closed = True
                sub.wake.set()
        await self._background.close()

    # -- streams ---------------------------------------------------------------------------------
    async def subscribe(self, tenant: str, ext: str | None) -> Subscriber:
        """A new stream of the tenant's events (``ext``: only that extension's); RateLimited
        past ``events.max_streams`` on this instance or ``max_streams_per_tenant``."""
        feed = self._feeds.get(tenant)
        if self._streams >= self.max_streams:
            raise RateLimited(f"this instance serves {self.max_streams} event streams (events.max_streams)",
                              retry_after=5)
        if feed is not None and len(feed.subscribers) >= self.max_streams_per_tenant:
            raise RateLimited(f"the tenant has {self.max_streams_per_tenant} event streams on this instance "
                              "(events.max_streams_per_tenant)", retry_after=5)
        if feed is None:
            feed = self._feeds[tenant] = _Feed()
            sub = Subscriber(tenant, ext, feed)
            feed.subscribers.add(sub)
            self._streams += 1
            try:
                with store_needed():
                    feed.cursor = (await self.storage.event_head(tenant))[0]
            except BaseException:
                self.unsubscribe(sub)
                feed.opened.set()
                raise
            feed.opened.set()
            return sub
        sub = Subscriber(tenant, ext, feed)
        feed.subscribers.add(sub)
        self._streams += 1
        await feed.opened.wait()
        if feed.cursor < 0:          # the first subscriber's read of the head failed
            self.unsubscribe(sub)
            raise StoreUnavailable()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        feed = sub.feed
        if sub in feed.subscribers:
            feed.subscribers.discard(sub)
            self._streams -= 1
        if not feed.subscribers and self._feeds.get(sub.tenant) is feed:
            del self._feeds[sub.tenant]          # nobody streams it here: its ring goes

    async def run(self, sub: Subscriber, last_event_id: str | None, write: Write) -> None:
        """Stream to ``write`` until the client goes or the stream is dropped (``Dropped``).

        Without ``last_event_id``: from now on. With one: everything after it from the store,
        then live; if it cannot be resumed (purged, or not an id of this log), a ``reset``
        event, then live from now."""
        cursor = await self._start(sub, last_event_id, write)
        live = False
        while not sub.closed:
            frames = self._after(sub.feed, cursor)
            if frames is None:
                if live:            # it fell behind the ring: it resumes from the store
                    self.dropped += 1
                    raise Dropped("the stream fell behind; resume with Last-Event-ID")
                rows = await self.storage.events_after(sub.tenant, cursor, CATCH_UP_PAGE)
                if not rows:
                    live = True     # the store has no more than the ring will: wait for it
                    await self._sleep(sub, cursor)
                    continue
                frames = [frame_of(row) for row in rows]
            else:
                live = True
            if not frames:
                await self._sleep(sub, cursor)
                continue
            visible = [f.wire for f in frames if sub.sees(f)]
            cursor = frames[-1].seq
            if visible:
                await write(b"".join(visible))
                self.frames_sent += len(visible)
        if sub.closed:
            raise Dropped("the gateway is stopping")

    async def _start(self, sub: Subscriber, last_event_id: str | None, write: Write) -> int:
        if last_event_id is None:
            return sub.feed.cursor
        try:            # (the answer has started: the client is told by the cut, and resumes)
            last, purged = await self.storage.event_head(sub.tenant)
        except StorageUnavailable:
            raise Dropped("the event log could not be read; resume with Last-Event-ID") from None
        try:
            seen = int(last_event_id)
        except ValueError:
            seen = -1
        if 0 <= seen <= last and seen >= purged:
            return seen
        why = "purged" if 0 <= seen < purged else "unknown"
        data = json.dumps({"reason": why, "last_event_id": last_event_id[:40], "id": last},
                          separators=(",", ":"))
        await write(frame(last, "reset", data))
        return last

    async def _sleep(self, sub: Subscriber, cursor: int) -> None:
        sub.wake.clear()
        if sub.closed or sub.feed.cursor > cursor:
            return
        await sub.wake.wait()

    @staticmethod
    def _after(feed: _Feed, cursor: int) -> list[Frame] | None:
        """The ring's frames after ``cursor``: [] if none yet, None if the ring no longer holds
        (or never held) the next one."""
        if cursor >= feed.cursor:
            return []
        ring = feed.ring
        if not ring or ring[0].seq > cursor + 1:
            return None
        return list(itertools.islice(ring, cursor + 1 - ring[0].seq, None))

    # -- reading the log -------------------------------------------------------------------------
    def _notified(self, payload: str) -> None:
        seq, _, tenant = payload.partition(" ")
        feed = self._feeds.get(tenant)
        if feed is not None and (feed.cursor < 0 or not seq.isdigit() or int(seq) > feed.cursor):
            feed.dirty = True
            self._wake.set()

    async def _read_loop(self) -> None:
        while True:
            try:        # asyncio.timeout, not wait_for: 3.11's wait_for may swallow a cancel
                async with asyncio.timeout(POLL_SECONDS):     # that comes as the event is set
                    await self._wake.wait()
            except TimeoutError:
                for feed in self._feeds.values():
                    feed.dirty = True
            self._wake.clear()
            try:
                await self.read_now()
            except StorageUnavailable:      # the store's health logs the outage (once): retry
                await asyncio.sleep(POLL_SECONDS)
            except Exception:
                log.exception("event log: read failed")
                await asyncio.sleep(POLL_SECONDS)

    async def read_now(self) -> None:
        """Read every dirty tenant's new rows (one query per batch), ring them, wake streams."""
        while True:
            feeds = {tenant: feed for tenant, feed in self._feeds.items() if feed.dirty and feed.cursor >= 0}
            if not feeds:
                return
            for feed in feeds.values():
                feed.dirty = False
            batch = max(1, min(READ_BATCH, self.buffer // 2))   # a burst never overflows the ring at once
            rows = await self.storage.read_events({t: f.cursor for t, f in feeds.items()}, batch)
            touched: set[str] = set()
            for row in rows:
                feed = feeds[row["tenant"]]
                if self._feeds.get(row["tenant"]) is not feed or int(row["seq"]) != feed.cursor + 1:
                    continue        # gone meanwhile; or not next (read twice): skipped
                f = frame_of(row)
                feed.ring.append(f)
                if len(feed.ring) > self.buffer:
                    feed.ring.popleft()
                feed.cursor = f.seq
                touched.add(row["tenant"])
            self.frames_read += len(rows)
            for tenant in touched:      # every stream moves on (a scoped one past others' frames)
                for sub in feeds[tenant].subscribers:
                    sub.wake.set()
            if len(rows) < batch:
                return
            for tenant in touched:            # a full batch: there may be more...
                feeds[tenant].dirty = True
            await asyncio.sleep(0)            # ...once the streams took this one

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY)
            try:
                await self.purge()
            except StorageUnavailable:      # said once by the store's health; the next round retries
                pass
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning("event log: purge failed (%s)", exc)

    async def purge(self, now: float | None = None) -> int:
        """Delete the events older than ``retention`` seconds; how many."""
        before = (time.time() if now is None else now) - self.retention
        total = 0
        while (n := await self.storage.purge_events(before, PURGE_BATCH)) > 0:
            total += n
            if n < PURGE_BATCH:
                break
        return total
