"""Webhooks: signed, durable, per-call ordered delivery of call events to tenants' URLs.

``publish`` only writes outbox rows (synchronous, no network), so a dead or slow receiver
can never slow call handling; a background worker POSTs them. Delivery is at least once:
a receiver may see a delivery again after a crash or restart and should deduplicate on
``X-C2C-Delivery``. For one hook and one call, events arrive in the order published (an
event is not sent before the previous one was delivered or given up); different calls and
different hooks are delivered concurrently, and each hook gets only a share of the
connections, so a hanging receiver cannot hold up the others.

Each delivery is ``POST <url>`` with the JSON event as body (the payload plus ``"event"``)
and these headers:

    Content-Type: application/json
    X-C2C-Event: ringing | answered | hangup | cdr
    X-C2C-Delivery: <delivery id; the same on every retry of that delivery>
    X-C2C-Timestamp: <unix seconds of this attempt>
    X-C2C-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

A 2xx answer means delivered (redirects are not followed). Anything else, a timeout or a
connection error is retried with exponential backoff until ``max_attempts``, then the
delivery is dead (logged, kept in the outbox).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from ..store import Delivery, Storage

log = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = ("ringing", "answered", "hangup", "cdr")
ALL_EVENTS = "*"

SIGNATURE_PREFIX = "sha256="
MAX_IDLE_WAIT = 60.0   # the worker re-checks the outbox at least this often
ERROR_PAUSE = 1.0      # after a storage error, before the worker tries again


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body``: the timestamp is signed so an old
    delivery cannot be replayed with a fresh timestamp."""
    message = f"{int(timestamp)}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp_header: str | None, signature_header: str | None,
           body: bytes, *, tolerance: int = 300, now: float | None = None) -> bool:
    """Receiver side: True if ``X-C2C-Signature`` matches and ``X-C2C-Timestamp`` is within
    ``tolerance`` seconds of ``now``."""
    if not timestamp_header or not signature_header:
        return False
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    if not signature_header.startswith(SIGNATURE_PREFIX):
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature_header[len(SIGNATURE_PREFIX):].encode())


class WebhookNotifier:
    """Turns published events into outbox rows and delivers them in the background.

    ``concurrency`` bounds the POSTs in flight; ``per_hook`` (default a quarter of it, at
    least 1) bounds them per hook, so receivers that hang only use up their own share."""

    def __init__(self, storage: Storage, *, timeout: float = 5.0, max_attempts: int = 8,
                 backoff_base: float = 1.0, backoff_max: float = 300.0, concurrency: int = 16,
                 per_hook: int | None = None, clock: Callable[[], float] = time.time,
                 owner: str = "solo") -> None:
        self.storage = storage
        self.owner = owner                     # this instance: the claims on deliveries are its
        self.timeout = timeout
        self.claim_seconds = 2 * timeout + 5   # a claim outlives any attempt of the instance holding it
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = max(1, concurrency)
        self.per_hook = max(1, per_hook if per_hook is not None else self.concurrency // 4)
        self.clock = clock
        self.delivered_count = 0
        self.dead_count = 0
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task | None = None
        self._wake = asyncio.Event()       # new rows, a finished delivery, or closing
        self._progress = asyncio.Event()   # a delivery finished (for wait_idle)
        self._in_flight: dict[tuple[str, str], asyncio.Task] = {}  # (hook, call) -> POST
        self._hook_load: dict[str, int] = {}
        self._outbox_lock = asyncio.Lock()   # reading due rows vs recording an outcome
        self._closing = False

    # ---- producer side (the call reporter) ---------------------------------------------

    async def deliveries(self, tenant: str, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """The outbox rows ``event`` makes: one per hook of ``tenant`` subscribed to it. The
        caller stores them (with the call's own facts, in one transaction), then ``wake``s
        the worker."""
        hooks = await self.storage.hooks_for(tenant, event)
        if not hooks:
            return []
        body = json.dumps({**payload, "event": event}, separators=(",", ":"),
                          ensure_ascii=False, default=str).encode("utf-8")
        call_id = str(payload.get("call_id") or "")
        return [Delivery(hook["id"], call_id, event, body) for hook in hooks]

    async def publish(self, tenant: str, event: str, payload: dict[str, Any]) -> int:
        """Queue ``event`` for every hook of ``tenant`` subscribed to it; returns how many."""
        deliveries = await self.deliveries(tenant, event, payload)
        now = self.clock()
        for delivery in deliveries:
            await self.storage.enqueue(delivery.hook_id, delivery.call_id, delivery.event, delivery.body, now=now)
        self.wake()
        return len(deliveries)

    def wake(self) -> None:
        """New rows are in the outbox."""
        self._wake.set()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start delivering, beginning with whatever a previous run left in the outbox."""
        if self._worker is not None:
            return
        self._closing = False
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._worker = asyncio.create_task(self._run(), name="webhook-worker")

    async def close(self, grace: float = 2.0) -> None:
        """Stop the worker; POSTs still running get ``grace`` seconds, then are cancelled
        (their rows stay pending and are sent again on the next start)."""
        self._closing = True
        self._wake.set()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        tasks = list(self._in_flight.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no POST is running and no row is due; False on timeout.

        Rows waiting for a later retry do not count: they are not due."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._progress.clear()   # clear, then check: a finish in between is not lost
            if await self._idle():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return await self._idle()

    async def _idle(self) -> bool:
        return not self._in_flight and not await self.storage.due_deliveries(self.clock(), 1)

    # ---- worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                wait = await self._dispatch()
            except Exception:
                log.exception("webhook outbox unreadable; retrying in %.0f s", ERROR_PAUSE)
                wait = ERROR_PAUSE
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _dispatch(self) -> float:
        """Start a POST for every due row whose call and hook have room; return how long
        to sleep if nothing wakes the worker earlier."""
        now = self.clock()
        # Under the lock: no delivery records its outcome (and leaves _in_flight) between
        # reading the due rows and starting them, so a row just delivered is never sent again.
        async with self._outbox_lock:
            # in-flight rows are still pending and earliest due, so asking for `concurrency`
            # per hook always leaves enough rows that are not yet running.
            for row in await self.storage.claim_due(self.owner, now, self.concurrency, self.claim_seconds):
                if len(self._in_flight) >= self.concurrency:
                    break
                key = (row["hook_id"], row["call_id"])
                if key in self._in_flight or self._hook_load.get(row["hook_id"], 0) >= self.per_hook:
                    continue
                self._hook_load[row["hook_id"]] = self._hook_load.get(row["hook_id"], 0) + 1
                self._in_flight[key] = asyncio.create_task(self._deliver(key, row))
        next_at = await self.storage.next_due_at(now)
        if next_at is None:
            return MAX_IDLE_WAIT
        return min(MAX_IDLE_WAIT, max(0.0, next_at - now))

    async def _deliver(self, key: tuple[str, str], row: dict[str, Any]) -> None:
        released = False
        try:
            error = await self._post(row)
            async with self._outbox_lock:
                await self._record(row, error)
                self._release(key)
                released = True
        finally:
            if not released:          # cancelled (closing): the row stays pending as it was
                self._release(key)
            self._wake.set()
            self._progress.set()

    async def _record(self, row: dict[str, Any], error: str | None) -> None:
        attempts = row["attempts"] + 1
        try:
            if error is None:
                await self.storage.mark_delivered(row["id"])
                self.delivered_count += 1
            elif attempts >= self.max_attempts:
                await self.storage.mark_dead(row["id"], error)
                self.dead_count += 1
                log.warning("webhook delivery %s (%s, call %s) to %s is dead after %d attempts: %s",
                            row["id"], row["event"], row["call_id"], row["url"], attempts, error)
            else:
                await self.storage.mark_retry(row["id"], attempts, self.clock() + self._backoff(attempts), error)
        except Exception:
            # the row stays pending as it was and is tried again
            log.exception("webhook delivery %s: cannot record its outcome", row["id"])

    def _release(self, key: tuple[str, str]) -> None:
        del self._in_flight[key]
        self._hook_load[key[0]] -= 1
        if not self._hook_load[key[0]]:
            del self._hook_load[key[0]]

    async def _post(self, row: dict[str, Any]) -> str | None:
        """One attempt; None if delivered, else why not."""
        assert self._session is not None
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "X-C2C-Event": row["event"],
            "X-C2C-Delivery": str(row["id"]),
            "X-C2C-Timestamp": str(timestamp),
            "X-C2C-Signature": SIGNATURE_PREFIX + sign(row["secret"], timestamp, row["body"]),
        }
        try:
            async with self._session.post(row["url"], data=row["body"], headers=headers,
                                          allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:  # connection refused, bad URL, TLS, ...: all retryable
            return f"{type(exc).__name__}: {exc}"[:500]

    def _backoff(self, attempts: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
        return delay * random.uniform(1.0, 1.1)
