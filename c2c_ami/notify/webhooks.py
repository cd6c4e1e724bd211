"""Webhooks: signed, durable, per-call ordered delivery of call events to tenants' URLs.

``publish`` only writes outbox rows (synchronous, no network), so a dead or slow receiver
can never slow call handling; a background worker POSTs them. Delivery is at least once:
a receiver may see a delivery again after a crash or restart and should deduplicate on
``X-C2C-Delivery`` (a random id: it tells nothing of other tenants' volume). For one hook and
one call, events arrive in the order published (an event is not sent before the previous one
was delivered or given up); different calls and different hooks are delivered concurrently.

Fairness: each round the worker reads only the rows that are due (no bodies), takes them
round-robin across tenants, then across each tenant's hooks, within three caps -- POSTs in
flight overall (``concurrency``), per tenant (``per_tenant``) and per hook (``per_hook``) --
so hooks that hang use up only their own tenant's share. A receiver that is down (connection
error, timeout, egress refusal, HTTP 429/502/503/504) backs off as a whole: its other due rows
wait for the same retry time without an attempt, instead of occupying the worker one by one.

Each delivery is ``POST <url>`` with the JSON event as body (the payload, ``carrier.hook_payload``, plus ``"event"``)
and these headers:

    Content-Type: application/json
    X-C2C-Event: ringing | answered | hangup | cdr
    X-C2C-Delivery: <delivery id; the same on every retry of that delivery>
    X-C2C-Timestamp: <unix seconds of this attempt>
    X-C2C-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

and, for a hook registered with the receiver's own key (the carrier's ``callback_apikey``),

    X-Api-Key: <key>
    Authorization: Bearer <key>

(the key is never logged: errors name the delivery, the event, the call and the URL only).

A 2xx answer means delivered (redirects are not followed). Anything else, a timeout or a
connection error is retried with exponential backoff until ``max_attempts``, then the
delivery is dead (logged, kept in the outbox). Delivered and dead rows are purged after
``retention_days``. The destination must pass the egress policy (``egress.py``) after DNS
resolution, at every attempt: a refused one fails like a connection error, with no connection.
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
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from ..log_filters import url_for_log
from ..patterns import HOOK_API_KEY
from ..store import Delivery, Storage, StorageUnavailable
from .egress import EgressPolicy, GuardedResolver, refusal_in

log = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = ("ringing", "answered", "hangup", "cdr")
ALL_EVENTS = "*"

SIGNATURE_PREFIX = "sha256="
MAX_IDLE_WAIT = 60.0   # the worker re-checks the outbox at least this often
ERROR_PAUSE = 1.0      # after a storage error, before the worker tries again
HOUSEKEEPING_EVERY = 60.0   # retention purge and the pending gauge
PURGE_BATCH = 1000          # rows deleted per statement...
PURGE_ROUNDS = 50           # ...and statements per housekeeping round
RECEIVER_DOWN_STATUSES = frozenset({429, 502, 503, 504})   # the receiver, not this delivery, failed


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


def hook_body(event: str, payload: dict[str, Any]) -> bytes:
    """A delivery's body: the payload and its ``event``, as compact UTF-8 JSON (the event
    stream's ``data`` is the same text)."""
    return json.dumps({**payload, "event": event}, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


class WebhookNotifier:
    """Turns published events into outbox rows and delivers them in the background.

    ``concurrency`` bounds the POSTs in flight; ``per_tenant`` (default half of it) and
    ``per_hook`` (default half of ``per_tenant``), at least 1, bound them per tenant and per
    hook, so receivers that hang only use up their own share."""

    def __init__(self, storage: Storage, *, timeout: float = 5.0, max_attempts: int = 8,
                 backoff_base: float = 1.0, backoff_max: float = 300.0, concurrency: int = 16,
                 per_tenant: int | None = None, per_hook: int | None = None,
                 retention_days: float = 7.0, egress: EgressPolicy | None = None,
                 resolver: AbstractResolver | None = None, clock: Callable[[], float] = time.time,
                 owner: str = "solo") -> None:
        self.storage = storage
        self.owner = owner                     # this instance: the claims on deliveries are its
        self.timeout = timeout
        self.claim_seconds = 2 * timeout + 5   # a claim outlives any attempt of the instance holding it
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = max(1, concurrency)
        self.per_tenant = max(1, min(self.concurrency, per_tenant if per_tenant is not None else self.concurrency // 2))
        self.per_hook = max(1, min(self.per_tenant, per_hook if per_hook is not None else self.per_tenant // 2))
        self.retention_seconds = retention_days * 86400.0
        self.egress = egress or EgressPolicy()
        self._resolver = resolver              # tests: a resolver of their own under the policy's guard
        self.clock = clock
        self.delivered_count = 0
        self.dead_count = 0
        self.outcomes: dict[tuple[str, str], int] = defaultdict(int)   # (tenant, outcome) -> count
        self.pending_by_tenant: dict[str, int] = {}                    # as of the last housekeeping
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task | None = None
        self._housekeeper: asyncio.Task | None = None
        self._wake = asyncio.Event()       # new rows, a finished delivery, or closing
        self._progress = asyncio.Event()   # a delivery finished (for wait_idle)
        self._in_flight: dict[tuple[str, str], asyncio.Task] = {}  # (hook, call) -> POST
        self._hook_load: dict[str, int] = defaultdict(int)
        self._tenant_load: dict[str, int] = defaultdict(int)
        self._turn = 0                     # which tenant goes first this round
        self._outbox_lock = asyncio.Lock()   # reading due rows vs recording an outcome
        self._closing = False

    # ---- producer side (the call reporter) ---------------------------------------------

    async def deliveries(self, tenant: str, event: str,
                         payload: dict[str, Any] | Callable[[], dict[str, Any]]) -> list[Delivery]:
        """The outbox rows ``event`` makes: one per hook of ``tenant`` subscribed to it. The
        caller stores them (with the call's own facts, in one transaction), then ``wake``s
        the worker. ``payload`` may be a function: it is built only if some hook wants it."""
        hooks = await self.storage.hooks_for(tenant, event)
        if not hooks:
            return []
        if callable(payload):
            payload = payload()
        return [Delivery(hook["id"], str(payload.get("call_id") or ""), event, hook_body(event, payload))
                for hook in hooks]

    async def deliveries_of(self, tenant: str, event: str, call_id: str, body: bytes) -> list[Delivery]:
        """The same, for a body already encoded (``hook_body``: the event log holds it too)."""
        return [Delivery(hook["id"], call_id, event, body) for hook in await self.storage.hooks_for(tenant, event)]

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
        await self.storage.release_claims(self.owner)    # a previous run's claims: nothing is in flight
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.egress, self._resolver))
        self._session = aiohttp.ClientSession(connector=connector,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._worker = asyncio.create_task(self._run(), name="webhook-worker")
        self._housekeeper = asyncio.create_task(self._keep_house(), name="webhook-housekeeping")

    async def close(self, grace: float = 2.0) -> None:
        """Stop the worker; POSTs still running get ``grace`` seconds, then are cancelled
        (their rows stay pending and are sent again on the next start)."""
        self._closing = True
        self._wake.set()
        for task in (self._worker, self._housekeeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._worker = self._housekeeper = None
        tasks = list(self._in_flight.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):     # else they wait for their claims to run out
                await self.storage.release_claims(self.owner)
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
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
            except TimeoutError:
                return await self._idle()

    async def _idle(self) -> bool:
        return not self._in_flight and not await self.storage.has_due(self.clock())

    # ---- housekeeping: retention and the pending gauge ----------------------------------

    async def housekeeping(self) -> int:
        """Purge delivered and dead rows older than the retention, in bounded batches (other
        work runs between them), and refresh ``pending_by_tenant``; returns how many purged."""
        before, purged = self.clock() - self.retention_seconds, 0
        for _ in range(PURGE_ROUNDS):
            count = await self.storage.purge_finished(before, PURGE_BATCH)
            purged += count
            if count < PURGE_BATCH:
                break
            await asyncio.sleep(0)
        self.pending_by_tenant = await self.storage.pending_by_tenant()
        return purged

    async def _keep_house(self) -> None:
        while not self._closing:
            try:
                await self.housekeeping()
            except StorageUnavailable:
                pass            # the store's health logs the outage; trying again later
            except Exception:
                log.exception("webhook outbox housekeeping failed; trying again later")
            await asyncio.sleep(HOUSEKEEPING_EVERY)

    # ---- worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                wait = await self._dispatch()
            except StorageUnavailable:      # the store's health logs the outage (once)
                wait = ERROR_PAUSE
            except Exception:
                log.exception("webhook outbox unreadable; retrying in %.0f s", ERROR_PAUSE)
                wait = ERROR_PAUSE
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start POSTs for due rows, fairly, within the caps; return how long to sleep if
        nothing wakes the worker earlier."""
        now = self.clock()
        # Under the lock: no delivery records its outcome (and leaves _in_flight) between
        # reading the due rows and starting them, so a row just delivered is never sent again.
        async with self._outbox_lock:
            if len(self._in_flight) < self.concurrency:
                heads = await self.storage.due_heads(now, per_hook=self.per_hook, per_tenant=self.per_tenant)
                picked = self._pick(heads)
                for row in await self.storage.claim(self.owner, [h["id"] for h in picked], now, self.claim_seconds):
                    key = (row["hook_id"], row["call_id"])
                    self._hook_load[row["hook_id"]] += 1
                    self._tenant_load[row["tenant"]] += 1
                    self._in_flight[key] = asyncio.create_task(self._deliver(key, row))
        # A row claimed by an instance that died (or stopped for good) is free again once its
        # claim runs out, and nothing announces that: look again at least that often.
        idle = min(MAX_IDLE_WAIT, self.claim_seconds)
        next_at = await self.storage.next_due_at(now)
        if next_at is None:
            return idle
        return min(idle, max(0.0, next_at - now))

    def _pick(self, heads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Round-robin across tenants (a different one first each round), then across each
        tenant's hooks, while the overall, tenant and hook caps have room."""
        queues: dict[str, dict[str, deque[dict[str, Any]]]] = {}
        for head in heads:                     # earliest due first within each hook
            queues.setdefault(head["tenant"], {}).setdefault(head["hook_id"], deque()).append(head)
        tenants = deque(queues)
        tenants.rotate(-(self._turn % len(tenants)) if tenants else 0)
        self._turn += 1
        hook_load, tenant_load = dict(self._hook_load), dict(self._tenant_load)
        busy, picked = set(self._in_flight), []
        room = self.concurrency - len(self._in_flight)
        while tenants and room > 0:
            tenant = tenants.popleft()
            hooks = queues[tenant]
            while hooks and tenant_load.get(tenant, 0) < self.per_tenant:
                hook_id = next(iter(hooks))
                queue = hooks.pop(hook_id)
                head = queue.popleft()
                key = (hook_id, head["call_id"])
                if key in busy or hook_load.get(hook_id, 0) >= self.per_hook:
                    if queue and hook_load.get(hook_id, 0) < self.per_hook:
                        hooks[hook_id] = queue     # this call is busy, the hook's next may go
                    continue
                if queue:
                    hooks[hook_id] = queue         # to the back: the tenant's next hook goes next
                busy.add(key)
                hook_load[hook_id] = hook_load.get(hook_id, 0) + 1
                tenant_load[tenant] = tenant_load.get(tenant, 0) + 1
                picked.append(head)
                room -= 1
                if hooks and tenant_load[tenant] < self.per_tenant:
                    tenants.append(tenant)         # to the back: the next tenant goes next
                break
        return picked

    async def _deliver(self, key: tuple[str, str], row: dict[str, Any]) -> None:
        released = False
        try:
            error, receiver_down = await self._post(row)
            async with self._outbox_lock:
                await self._record(row, error, receiver_down)
                self._release(key, row["tenant"])
                released = True
        finally:
            if not released:          # cancelled (closing): the row stays pending as it was
                self._release(key, row["tenant"])
            self._wake.set()
            self._progress.set()

    async def _record(self, row: dict[str, Any], error: str | None, receiver_down: bool) -> None:
        attempts = row["attempts"] + 1
        tenant = row["tenant"]
        try:
            if error is None:
                await self.storage.mark_delivered(row["id"])
                self.delivered_count += 1
                self.outcomes[tenant, "delivered"] += 1
                return
            retry_at = self.clock() + self._backoff(attempts)
            if attempts >= self.max_attempts:
                await self.storage.mark_dead(row["id"], error)
                self.dead_count += 1
                self.outcomes[tenant, "dead"] += 1
                log.warning("webhook delivery %s (%s, call %s) to %s is dead after %d attempts: %s",
                            row["delivery_id"], row["event"], row["call_id"], url_for_log(row["url"]), attempts,
                            error)
            else:
                await self.storage.mark_retry(row["id"], attempts, retry_at, error)
                self.outcomes[tenant, "retried"] += 1
            if receiver_down:         # the hook's other due rows wait too, without an attempt
                await self.storage.defer_hook(row["hook_id"], retry_at, self.clock())
        except StorageUnavailable:      # the row stays pending as it was: it is sent again
            log.warning("webhook delivery %s: its outcome could not be recorded (store unavailable); "
                        "it is sent again", row["delivery_id"])
        except Exception:
            # the row stays pending as it was and is tried again
            log.exception("webhook delivery %s: cannot record its outcome", row["delivery_id"])

    def _release(self, key: tuple[str, str], tenant: str) -> None:
        del self._in_flight[key]
        for load, name in ((self._hook_load, key[0]), (self._tenant_load, tenant)):
            load[name] -= 1
            if not load[name]:
                del load[name]

    async def _post(self, row: dict[str, Any]) -> tuple[str | None, bool]:
        """One attempt: (None if delivered else why not, whether the receiver looks down)."""
        assert self._session is not None
        refusal = self.egress.url_refusal(row["url"])
        if refusal is not None:       # a literal address never reaches the resolver: check it here
            return f"egress refused: {refusal}", True
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "X-C2C-Event": row["event"],
            "X-C2C-Delivery": row["delivery_id"] or f"outbox-{row['id']}",   # (a row older code wrote)
            "X-C2C-Timestamp": str(timestamp),
            "X-C2C-Signature": SIGNATURE_PREFIX + sign(row["secret"], timestamp, row["body"]),
        }
        api_key = row.get("api_key")
        if api_key:
            if not HOOK_API_KEY.fullmatch(api_key):   # checked at registration; never a header injection
                return "the hook's callback_apikey is not a valid header value", False
            headers["X-Api-Key"] = api_key
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            async with self._session.post(row["url"], data=row["body"], headers=headers,
                                          allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return None, False
                return f"HTTP {resp.status}", resp.status in RECEIVER_DOWN_STATUSES
        except TimeoutError:
            return f"no answer within {self.timeout:g} s", True
        except Exception as exc:  # connection refused, bad URL, TLS, egress refused: all retryable
            refusal = refusal_in(exc)
            if refusal is not None:
                return f"egress refused: {refusal}", True
            # the receiver's URL may be in it: kept and logged without its query (its token)
            return f"{type(exc).__name__}: {exc}".replace(row["url"], url_for_log(row["url"]))[:500], True

    def _backoff(self, attempts: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
        return delay * random.uniform(1.0, 1.1)
