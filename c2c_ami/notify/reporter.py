"""What goes out about a call: a log line per step, its durable facts while it is live, its
CDR at the end, and the webhooks of each step.

It is the calls' observer (the registry tells it, once per change, the steps a call took and
hands it the call; once at the end, the ended call), so it runs inside the AMI event path and
must not wait: it only decides what to write and queues it. One writer task stores the queue in order, in batches of
one transaction (group commit: whatever queues up within ``GROUP_COMMIT_SECONDS`` of the
first write, or until a call ends: a call's end frees its extension in the store, so it is
written at once; a step's facts with its webhooks, a CDR with the last ones; facts a later
write of the same call replaces are skipped), then wakes the webhook worker: a webhook is sent
only once its row is stored. ``flush`` waits until everything queued is stored.

Logs: each step at DEBUG; at INFO one line per call when it ends, with its outcome and when
each party answered (the service logs the Originate): a line per step cost ~7 % of the
gateway's CPU per call on a real Asterisk.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from ..calls.call import Call, CallState, Step
from ..calls.record import call_record
from ..carrier import hook_payload
from ..store import CallWrite, Delivery, Storage, StorageUnavailable
from ..waits import wait_set
from .webhooks import WebhookNotifier

log = logging.getLogger(__name__)

# Steps announced as webhooks: ringing/answered fire once for the extension and once for the
# number (the payload's ``leg`` tells which: the call's state when the step was reported); an
# ended call sends hangup, then cdr, once. The payload is the carrier's (``carrier.hook_payload``).
RETRY_MIN, RETRY_MAX = 0.5, 5.0      # seconds between tries while the store is unavailable
# A write waits this long for others to share its transaction. The writes of a burst of
# events (calls placed together ring, answer and end together) then cost one commit; the
# facts of a live call reach the store this much later (webhooks too: never before).
GROUP_COMMIT_SECONDS = 0.05
_WEBHOOK_EVENTS: dict[Step, str] = {"ringing": "ringing", "answered": "answered"}
_END_EVENTS = ("hangup", "cdr")
_LEGS: dict[CallState, str] = {CallState.EXT_RINGING: "extension", CallState.EXT_ANSWERED: "extension",
                               CallState.NUMBER_RINGING: "number", CallState.NUMBER_ANSWERED: "number"}


@dataclass(frozen=True)
class _Write:
    call_id: str
    tenant: str
    pbx: str
    facts: dict[str, Any] | None         # a live call's facts; None once it ended
    record: dict[str, Any] | None        # the record (CDR at the end) for the webhooks
    events: tuple[tuple[str, str | None], ...]   # (webhook event, its leg: ringing/answered's
                                                 # "extension" or "number", else None)


MAX_BATCH = 100     # writes stored in one transaction (SQLite runs it in place: a few ms at most)


def _digest(facts: dict[str, Any]) -> int:
    """Facts have a fixed key order and hashable values: a hash tells a change (kept per
    live call instead of the facts themselves, to keep memory small)."""
    return hash(tuple(facts.values()))


class CallReporter:
    def __init__(self, storage: Storage, webhooks: WebhookNotifier, *, retry_min: float = RETRY_MIN,
                 zone: tzinfo = UTC, group_commit: float = GROUP_COMMIT_SECONDS) -> None:
        self.storage = storage
        self.webhooks = webhooks
        self.zone = zone                 # api.timezone: the payloads' carrier times
        self.retry_min = retry_min
        self.group_commit = group_commit
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._written: dict[str, int] = {}               # call_id -> hash of the facts last queued
        self._ending: dict[str, dict[str, Any]] = {}     # call_id -> its CDR, queued, not yet stored
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()        # an end is queued: write now
        self._writer: asyncio.Task | None = None

    # -- the observer (synchronous: the AMI event path) ------------------------------------------
    def call_changed(self, call: Call, steps: list[tuple[Step, CallState]]) -> None:
        """Log each step; store the call's facts if they changed since last queued, with the
        webhooks of its steps. Facts and record are each built once."""
        events: list[tuple[str, str | None]] = []
        debug = log.isEnabledFor(logging.DEBUG)
        for step, state in steps:
            if debug:
                log.debug("call %s: %s (ext %s -> %s)", call.call_id, state.value, call.ext, call.phone)
            event = _WEBHOOK_EVENTS.get(step)
            if event is not None:
                events.append((event, _LEGS.get(state)))
        facts = call.facts()
        digest = _digest(facts)
        if self._written.get(call.call_id) == digest and not events:
            return
        self._written[call.call_id] = digest
        record = call_record(call) if events else None
        self._put(_Write(call.call_id, call.tenant, call.pbx, facts, record, tuple(events)))

    def call_ended(self, call: Call) -> None:
        """The end: its CDR (the record, built once: CDR row, webhook body and log line share
        it), then hangup and cdr."""
        record = call_record(call)
        log.info("call %s: %s (ext %s -> %s) status=%s cause=%s ext answered %s, number answered %s%s",
                 call.call_id, call.state.value, call.ext, call.phone, record["status"], record["cause"],
                 _after(call.started_at, call.ext_answered_at), _after(call.started_at, call.number_answered_at),
                 " unobserved" if call.ended_unobserved else "")
        self._written.pop(call.call_id, None)
        self._ending[call.call_id] = record
        self._hurry.set()
        self._put(_Write(call.call_id, call.tenant, call.pbx, None, record,
                         tuple((event, None) for event in _END_EVENTS)))

    def call_stored(self, call: Call) -> None:
        """Its claim stored these facts: the write after the Originate is skipped if they
        have not changed (a click on PostgreSQL then costs two round trips: claim, answer)."""
        self._written[call.call_id] = _digest(call.facts())

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
            batch = [await self._queue.get()]
            if self.group_commit > 0 and self._queue.qsize() < MAX_BATCH - 1 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.group_commit):
                        await self._hurry.wait()
            self._hurry.clear()
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            delay = self.retry_min
            while True:
                try:
                    await self._store(batch)
                    break
                except StorageUnavailable as exc:   # the database is away: keep the writes, retry
                    log.warning("%d call write(s): store unavailable (%s); retrying in %.1f s",
                                len(batch), exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                except Exception:  # a bad batch: store what can be, one by one, and go on
                    if len(batch) == 1:
                        log.exception("call %s: could not store %s", batch[0].call_id, _what(batch[0]))
                        break
                    batch = await self._store_singly(batch)
                    if not batch:
                        break
            if self._queue.empty():
                self._idle.set()
            else:
                await asyncio.sleep(0)    # let the event loop answer requests between batches

    async def _store_singly(self, batch: list[_Write]) -> list[_Write]:
        """After a batch failed: each write alone; returns those the store was unavailable for."""
        left = []
        for write in batch:
            try:
                await self._store([write])
            except StorageUnavailable:
                left.append(write)
            except Exception:
                log.exception("call %s: could not store %s", write.call_id, _what(write))
        return left

    async def _store(self, batch: list[_Write]) -> None:
        last_of_call = {write.call_id: n for n, write in enumerate(batch)}
        writes = []
        for n, write in enumerate(batch):
            if write.record is None and last_of_call[write.call_id] != n:
                continue                  # facts only, replaced by a later write of the call
            deliveries: list[Delivery] = []
            if write.record is not None:
                for event, leg in write.events:
                    payload = functools.partial(hook_payload, write.record, event, self.zone, leg=leg)
                    deliveries += await self.webhooks.deliveries(write.tenant, event, payload)
            writes.append(CallWrite(write.call_id, write.tenant, write.pbx, write.facts,
                                    write.record if write.facts is None else None, tuple(deliveries)))
        await self.storage.save_call_writes(writes)
        for write in batch:
            if write.facts is None:
                self._ending.pop(write.call_id, None)
        if any(w.deliveries for w in writes):
            self.webhooks.wake()


def _after(start: float, at: float | None) -> str:
    return "-" if at is None else f"+{at - start:.2f} s"


def _what(write: _Write) -> str:
    return ", ".join(event for event, _ in write.events) or "facts"
