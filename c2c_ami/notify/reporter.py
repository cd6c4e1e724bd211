"""What goes out about a call: a log line per step, its durable facts while it is live, its
CDR at the end, and the webhooks of each step.

It is the calls' observer, so it runs inside the AMI event path and must not wait: it only
decides what to write and queues it. One writer task stores the queue in order, each entry in
one transaction (a step's facts with its webhooks; the CDR with the last ones), then wakes
the webhook worker. ``flush`` waits until everything queued is stored.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ..calls.call import Call, Step
from ..calls.record import call_record, webhook_body
from ..store import Storage, StorageUnavailable
from ..waits import wait_set
from .webhooks import WebhookNotifier

log = logging.getLogger(__name__)

# Steps announced as webhooks: ringing/answered fire for the extension and again for the
# number (the payload's ``state`` tells which); an ended call sends hangup, then cdr.
RETRY_MIN, RETRY_MAX = 0.5, 5.0      # seconds between tries while the store is unavailable
_WEBHOOK_EVENTS: dict[Step, tuple[str, ...]] = {"ringing": ("ringing",), "answered": ("answered",),
                                                "ended": ("hangup", "cdr")}


@dataclass(frozen=True)
class _Write:
    call_id: str
    tenant: str
    pbx: str
    facts: dict[str, Any] | None         # a live call's facts; None once it ended
    record: dict[str, Any] | None        # the record (CDR at the end) for the webhooks
    events: tuple[str, ...]


class CallReporter:
    def __init__(self, storage: Storage, webhooks: WebhookNotifier, *, retry_min: float = RETRY_MIN) -> None:
        self.storage = storage
        self.webhooks = webhooks
        self.retry_min = retry_min
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._written: dict[str, dict[str, Any]] = {}    # call_id -> the facts last queued
        self._ending: dict[str, dict[str, Any]] = {}     # call_id -> its CDR, queued, not yet stored
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task | None = None

    # -- the observer (synchronous: the AMI event path) ------------------------------------------
    def call_event(self, call: Call, event: Step) -> None:
        record = call_record(call)  # built once: CDR row, webhook body and log line share it
        log.info("call %s: %s (ext %s -> %s)%s", call.call_id, call.state.value, call.ext, call.phone,
                 f" status={record['status']} cause={record['cause']}"
                 f"{' unobserved' if call.ended_unobserved else ''}" if event == "ended" else "")
        if event == "ended":
            self._written.pop(call.call_id, None)
            self._ending[call.call_id] = record
            self._put(_Write(call.call_id, call.tenant, call.pbx, None, record, _WEBHOOK_EVENTS["ended"]))
        else:
            facts = call.facts()
            self._written[call.call_id] = facts
            self._put(_Write(call.call_id, call.tenant, call.pbx, facts, record, _WEBHOOK_EVENTS.get(event, ())))

    def call_changed(self, call: Call) -> None:
        """Store the call's facts if they changed since last queued."""
        facts = call.facts()
        if self._written.get(call.call_id) != facts:
            self._written[call.call_id] = facts
            self._put(_Write(call.call_id, call.tenant, call.pbx, facts, None, ()))

    def unstored_end(self, call_id: str) -> dict[str, Any] | None:
        return self._ending.get(call_id)

    def _put(self, write: _Write) -> None:
        self._idle.clear()
        self._queue.put_nowait(write)

    # -- the writer -------------------------------------------------------------------------------
    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._run(), name="call-reporter")

    async def flush(self, timeout: float) -> bool:
        """Wait (bounded) until every queued write is stored; False if some are not."""
        return await wait_set(self._idle, timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Store what is queued (bounded), then stop."""
        if not await self.flush(timeout):
            log.error("%d call writes not stored at shutdown", self._queue.qsize())
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None

    async def _run(self) -> None:
        while True:
            write = await self._queue.get()
            delay = self.retry_min
            while True:
                try:
                    await self._store(write)
                    break
                except StorageUnavailable as exc:   # the database is away: keep the write, retry
                    log.warning("call %s: store unavailable (%s); retrying in %.1f s", write.call_id, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                except Exception:  # a bad write: log it, never let it stop the ones behind it
                    log.exception("call %s: could not store %s", write.call_id, write.events or "facts")
                    break
            if self._queue.empty():
                self._idle.set()

    async def _store(self, write: _Write) -> None:
        deliveries = []
        if write.record is not None:
            body = webhook_body(write.record)
            for event in write.events:
                deliveries += await self.webhooks.deliveries(write.tenant, event, body)
        if write.facts is not None:
            await self.storage.save_progress(write.call_id, write.tenant, write.pbx, write.facts, deliveries)
        elif write.record is not None:
            await self.storage.save_end(write.record, deliveries)
            self._ending.pop(write.call_id, None)
        if deliveries:
            self.webhooks.wake()
