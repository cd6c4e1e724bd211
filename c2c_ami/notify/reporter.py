"""What goes out about a call: a log line per step, its durable facts while it is live, its
CDR at the end, and the webhooks of each step.

Each step also goes into the tenant's event log (GET /v1/events/stream), in the same
transaction: one event per webhook event (its data the webhook body, whether or not the
tenant has hooks) and a ``state`` event whenever what a live-calls view shows changes (the
state, or what call control did).

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
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from ..calls.call import Call, CallState, Step
from ..calls.record import call_record
from ..carrier import hook_payload
from ..store import CallWrite, Delivery, LogEvent, Storage, StorageUnavailable
from ..waits import wait_set
from .webhooks import WebhookNotifier, hook_body

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
_END_EVENTS = ("state", "hangup", "cdr")
STATE = "state"          # the event log's own event: what a live-calls view shows changed
_LEGS: dict[CallState, str] = {CallState.EXT_RINGING: "extension", CallState.EXT_ANSWERED: "extension",
                               CallState.NUMBER_RINGING: "number", CallState.NUMBER_ANSWERED: "number"}


@dataclass(frozen=True)
class _Write:
    call_id: str
    tenant: str
    pbx: str
    facts: dict[str, Any] | None         # a live call's facts; None once it ended
    record: dict[str, Any] | None        # the record (CDR at the end) for the webhooks
    events: tuple[tuple[str, str | None], ...]   # (event: state or a webhook's, its leg:
                                                 # ringing/answered's "extension" or "number", else None)
    cdr: bool = True                     # facts None and a record: the CDR (False: the events only)


MAX_BATCH = 100     # writes stored in one transaction (SQLite runs it in place: a few ms at most)


def _view(call: Call) -> tuple[Any, ...]:
    """What a live-calls view shows of a call: a ``state`` event is logged when it changes."""
    transfer = call.transfers[-1] if call.transfers else None
    park = call.parks[-1] if call.parks else None
    return (call.state, call.unobserved_since is not None, len(call.transfers), transfer and transfer.answered,
            len(call.parks), park and park.outcome, len(call.supervisors),
            sum(s.time_started is not None for s in call.supervisors), call.recording_started_at is not None,
            len(call.masks), bool(call.masks) and call.masks[-1].end is None)


def _digest(facts: dict[str, Any]) -> int:
    """Facts have a fixed key order and, but for call control's lists, hashable values: a hash
    tells a change (kept per live call instead of the facts themselves, to keep memory small)."""
    return hash(tuple(repr(v) if isinstance(v, (list, dict)) else v for v in facts.values()))


class CallReporter:
    def __init__(self, storage: Storage, webhooks: WebhookNotifier, *, retry_min: float = RETRY_MIN,
                 zone: tzinfo = UTC, recording_url: Callable[[dict[str, Any]], str] | None = None,
                 group_commit: float = GROUP_COMMIT_SECONDS) -> None:
        self.storage = storage
        self.webhooks = webhooks
        self.zone = zone                 # api.timezone: the payloads' carrier times
        self.recording_url = recording_url   # an ended call's recording link (calls/recordings.py)
        self.retry_min = retry_min
        self.group_commit = group_commit
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._batch: list[_Write] = []                   # taken from the queue, being stored
        self._written: dict[str, int] = {}               # call_id -> hash of the facts last queued
        self._shown: dict[str, tuple[Any, ...]] = {}     # call_id -> its view last logged (``_view``)
        self._ending: dict[str, dict[str, Any]] = {}     # call_id -> its CDR, queued, not yet stored
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()        # an end is queued (or someone waits): write now
        self._queued = 0                     # writes ever queued...
        self._done = 0                       # ...and ever done with (stored, or given up on)
        self._progress = asyncio.Event()     # set at each batch done
        self._writer: asyncio.Task | None = None

    # -- the observer (synchronous: the AMI event path) ------------------------------------------
    def call_changed(self, call: Call, steps: list[tuple[Step, CallState]]) -> None:
        """Log each step; store the call's facts if they changed since last queued, with the
        webhooks of its steps. Facts and record are each built once."""
        events: list[tuple[str, str | None]] = []
        view = _view(call)
        if self._shown.get(call.call_id) != view:
            self._shown[call.call_id] = view
            events.append((STATE, None))
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
        self._shown.pop(call.call_id, None)
        self._ending[call.call_id] = record
        self._hurry.set()
        self._put(_Write(call.call_id, call.tenant, call.pbx, None, record,
                         tuple((event, None) for event in _END_EVENTS)))

    def opening_events(self, call: Call) -> tuple[LogEvent, ...]:
        """The call's first ``state`` event (as placed), for its claim to store in the same
        statement (several instances on PostgreSQL)."""
        record = call_record(call)
        body = hook_body(STATE, hook_payload(record, STATE, self.zone, leg=None, recording_url=""))
        return (LogEvent(call.tenant, STATE, body.decode("utf-8"), record.get("extension"), call.call_id),)

    def call_stored(self, call: Call) -> None:
        """Its claim stored these facts and its ``opening_events``: the write after the
        Originate is skipped if they have not changed (a click on PostgreSQL then costs two
        round trips: claim, answer)."""
        self._written[call.call_id] = _digest(call.facts())
        self._shown[call.call_id] = _view(call)

    def call_dropped(self, call: Call) -> None:
        """Refused after its claim stored its opening ``state`` (several instances): the
        stream is told it ended there (``call_state`` ``ended``); no CDR, no webhook, as for
        a call refused before any claim."""
        self._written.pop(call.call_id, None)
        if self._shown.pop(call.call_id, None) is None:
            return
        record = {**call_record(call), "state": CallState.ENDED.value}
        self._put(_Write(call.call_id, call.tenant, call.pbx, None, record, ((STATE, None),), cdr=False))

    def unstored_end(self, call_id: str) -> dict[str, Any] | None:
        return self._ending.get(call_id)

    async def written(self, timeout: float) -> bool:
        """Wait (bounded) until every write queued so far is stored, without lingering for a
        group commit (an instance answering another's call control: what it asked for is in
        the store when it hears back); False if the time ran out."""
        mark = self._queued
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._done < mark:
            self._hurry.set()
            self._progress.clear()
            if not await wait_set(self._progress, deadline - loop.time()):
                return self._done >= mark
        return True

    def _put(self, write: _Write) -> None:
        self._idle.clear()
        self._queued += 1
        self._queue.put_nowait(write)

    # -- the writer -------------------------------------------------------------------------------
    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._run(), name="call-reporter")

    async def flush(self, timeout: float) -> bool:
        """Wait (bounded) until every queued write is stored; False if some are not."""
        return await wait_set(self._idle, timeout)

    def held(self) -> int:
        """Writes not stored yet: the batch being stored (kept while the store is away) and
        the queue behind it."""
        return len(self._batch) + self._queue.qsize()

    async def close(self, timeout: float = 5.0) -> None:
        """Store what is queued (bounded: briefly if the store is away), then stop; say once
        how many writes could not be stored."""
        if not await self.flush(timeout if self.storage.health.available else min(timeout, 1.0)):
            log.error("%d call write(s) not stored at shutdown (the store is unavailable): they are lost",
                      self.held())
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None

    async def _run(self) -> None:
        while True:
            batch = self._batch = [await self._queue.get()]
            if self.group_commit > 0 and self._queue.qsize() < MAX_BATCH - 1 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.group_commit):
                        await self._hurry.wait()
            self._hurry.clear()
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            taken = len(batch)
            delay = self.retry_min
            while True:
                try:
                    await self._store(batch)
                    break
                except StorageUnavailable:  # the database is away (its health says so once): keep, retry
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                except Exception:  # a bad batch: store what can be, one by one, and go on
                    if len(batch) == 1:
                        log.exception("call %s: could not store %s", batch[0].call_id, _what(batch[0]))
                        break
                    batch = self._batch = await self._store_singly(batch)
                    if not batch:
                        break
            self._done += taken
            self._progress.set()
            self._batch = []
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
            logged: list[LogEvent] = []
            if write.record is not None:
                link = self.recording_url(write.record) if self.recording_url and write.facts is None else ""
                ext = write.record.get("extension")
                for event, leg in write.events:
                    body = hook_body(event, hook_payload(write.record, event, self.zone, leg=leg, recording_url=link))
                    logged.append(LogEvent(write.tenant, event, body.decode("utf-8"), ext, write.call_id))
                    if event != STATE:
                        deliveries += await self.webhooks.deliveries_of(write.tenant, event, write.call_id, body)
            writes.append(CallWrite(write.call_id, write.tenant, write.pbx, write.facts,
                                    write.record if write.facts is None and write.cdr else None,
                                    tuple(deliveries), tuple(logged)))
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
