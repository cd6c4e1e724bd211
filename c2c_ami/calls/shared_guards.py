"""The guards shared by every gateway instance on one store (several instances on PostgreSQL).

* ``SharedFlight``: of identical requests (a duplicate click, a replayed ``Idempotency-Key``)
  on any instance, the first places the call; the others wait for its answer, which is kept
  with the key in the store, and give the same answer (same ``call_id``, one INVITE).
* ``SharedRateLimiter``: one token bucket per API token (and per tenant + ext for the click
  limit), in the store, updated in one statement, so instances never race.

The service checks a request (ext, hotline, click limit) before it may join another, and an
identical request only (the fingerprint is part of the duplicate key), so a joiner never
skips a check. Keys live in the store until they expire, each under its tenant's name: no
tenant's traffic pushes out another's, and an expired key is deleted before it is claimed,
never joined.

With one instance (SQLite) the in-memory guards of ``guards.py`` do the same work.

Round trips: a click takes its key together with everything else it takes in the store
(``Ticket``: the call service claims it with the extension and the rate buckets, one
statement: ``Storage.claim_click``), and answers it once the Originate is queued: two round
trips. A request's token of the per-token limit waits for that statement too (``Charge``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable

from ..errors import C2CError, InvalidParams, PbxUnavailable, RateLimited, StoreUnavailable, error_from
from ..store import Bucket, RequestKey, Storage, StorageUnavailable
from .guards import forgettable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05      # how often a request waiting on another instance's answer looks
LIVENESS_EVERY = 20      # polls between checks that the instance holding the key is alive
JOINERS_SEE_SECONDS = 2.0    # a forgotten failure's answer is kept this long for its joiners
_HOLDER_GONE = "\x00gone"   # (no stored answer is ever this)


class Ticket:
    """A request key for whoever claims it with the rest of the click (``taken`` once the
    store granted it); ``KeyHeld`` if another request holds it."""

    def __init__(self, key: RequestKey) -> None:
        self.key = key
        self.taken = False


class KeyHeld(Exception):
    """The ticket's key is held by another request: ``row`` is its holder's."""

    def __init__(self, row: dict) -> None:
        super().__init__("request key held")
        self.row = row


class SharedFlight:
    def __init__(self, store: Storage, owner: str, *, ttl: float, remember_failures: bool,
                 hold_seconds: float) -> None:
        self.store = store
        self.owner = owner
        self.ttl = ttl                        # how long an answer is kept
        self.remember_failures = remember_failures
        self.hold_seconds = hold_seconds      # how long a request may run before its key is free again

    async def run(self, scope: str, key: str, fingerprint: str, start: Callable[[Ticket], Awaitable[str]]) -> str:
        """``start`` claims the ticket with its own claim (or raises KeyHeld); a request that
        finds the key held waits for its holder's answer."""
        deadline = time.monotonic() + self.hold_seconds
        try:
            while True:
                ticket = Ticket(RequestKey(scope, key, fingerprint, self.owner, time.time() + self.hold_seconds))
                try:
                    return await self._first(ticket, start)
                except KeyHeld as exc:
                    held = exc.row
                if held["fingerprint"] != fingerprint:
                    raise InvalidParams("Idempotency-Key: already used with different parameters")
                answer = held["answer"] or await self._wait_answer(scope, key, deadline)
                if answer is _HOLDER_GONE:
                    # its call, if placed, is adopted by a survivor: never place a second one
                    raise PbxUnavailable("the gateway instance that took this request stopped before answering; "
                                         "its call, if placed, goes on: see GET /v1/call")
                if answer is not None:
                    return _replay(answer)
                if time.monotonic() > deadline:
                    raise PbxUnavailable("an identical request on another gateway instance is still running")
        except StorageUnavailable:
            raise StoreUnavailable() from None

    async def _first(self, ticket: Ticket, start: Callable[[Ticket], Awaitable[str]]) -> str:
        scope, key = ticket.key.scope, ticket.key.key
        try:
            call_id = await start(ticket)
        except C2CError as exc:
            remember = self.remember_failures and not forgettable(exc)
            if not ticket.taken and remember:      # refused before its claim: keep the answer all the same
                with contextlib.suppress(StorageUnavailable):
                    ticket.taken = await self.store.claim_request(scope, key, ticket.key.fingerprint, self.owner,
                                                                  ticket.key.expires_at) is None
            if ticket.taken and remember:
                await self._keep(scope, key, json.dumps(_answer_of(exc)))
            elif ticket.taken and exc.call_id is not None:
                # a call was placed and failed: the requests joined meanwhile (polling on other
                # instances) get this answer, never a call of their own; a new click a moment
                # later rings again
                await self._keep(scope, key, json.dumps(_answer_of(exc)), ttl=JOINERS_SEE_SECONDS)
            elif ticket.taken:
                await self._let_go(scope, key)
            raise
        except KeyHeld:
            raise
        except BaseException:
            if ticket.taken:
                await asyncio.shield(self._let_go(scope, key))
            raise
        await self._keep(scope, key, json.dumps({"call_id": call_id}))
        return call_id

    async def _keep(self, scope: str, key: str, answer: str, ttl: float | None = None) -> None:
        """Keep the first answer for the key's joiners and replays. The request was answered
        (a call may have been placed): a store gone meanwhile must not turn that answer into
        an error; the key is then held until ``hold_seconds`` pass, and its joiners are told
        the store is unavailable."""
        try:
            await self.store.answer_request(scope, key, answer, time.time() + (self.ttl if ttl is None else ttl))
        except StorageUnavailable:
            log.warning("%s key: its answer could not be kept (store unavailable)", scope)

    async def _let_go(self, scope: str, key: str) -> None:
        with contextlib.suppress(StorageUnavailable):       # else it is let go when hold_seconds pass
            await self.store.drop_request(scope, key)

    async def _wait_answer(self, scope: str, key: str, deadline: float) -> str | None:
        """The answer of the request holding the key; None if the key was let go (its request
        failed without placing a call) or the wait is over; ``_HOLDER_GONE`` if the instance
        holding it stopped."""
        polls = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            row = await self.store.request_answer(scope, key)
            if row is None or row["expires_at"] < time.time():
                return None
            if row["answer"] is not None:
                return str(row["answer"])
            polls += 1
            if polls % LIVENESS_EVERY == 0 and not await self._alive(row["owner"]):
                return _HOLDER_GONE
        return None

    async def _alive(self, instance_id: str) -> bool:
        now = time.time()
        return any(i["id"] == instance_id and i["lease_until"] >= now for i in await self.store.instances())


def _answer_of(error: C2CError) -> dict[str, str | None]:
    return {"error": error.code, "message": error.message, "call_id": error.call_id}


def _replay(answer: str) -> str:
    stored = json.loads(answer)
    if "error" in stored:
        raise error_from(stored["error"], stored["message"], stored.get("call_id"))
    return str(stored["call_id"])


class SharedRateLimiter:
    """``per_minute`` requests per minute and ``burst`` at once per key, across every instance.
    ``what`` names the limit in its refusal; ``namespace`` keeps its rows apart from another
    limiter's (the per-token limiter's rows are the token digests themselves)."""

    def __init__(self, store: Storage, per_minute: float, burst: int, *, what: str = "rate limit",
                 namespace: str = "") -> None:
        self.store = store
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.what = what
        self.namespace = namespace

    async def admit(self, scope: str, key: str) -> None:
        bucket = self.bucket(scope, key)
        try:
            allowed, tokens = await self.store.take_token(bucket.key, bucket.rate, bucket.burst)
        except StorageUnavailable:
            raise StoreUnavailable() from None
        if not allowed:
            raise self.refusal(tokens)

    def bucket(self, scope: str, key: str) -> Bucket:
        """The store's bucket of ``key`` (for a claim that takes its token with other things)."""
        return Bucket(f"{self.namespace} {scope} {key}" if self.namespace else key, self.rate, self.burst)

    def refusal(self, tokens: float) -> RateLimited:
        retry = max(1, math.ceil((1.0 - tokens) / self.rate))
        return RateLimited(f"{self.what} exceeded; retry in {retry} s", retry_after=retry)

    def charge(self, scope: str, key: str) -> Charge:
        """A token of ``key`` taken later: with the click's claim, or alone (``settle``)."""
        return Charge(self, scope, key)


class Charge:
    """One request's token of a shared limit, taken with the click's claim in the store when
    the request gets that far (``taken``), else alone when the request is over (``settle``):
    every request pays one token either way, and over the limit it is RATE_LIMITED."""

    def __init__(self, limiter: SharedRateLimiter, scope: str, key: str) -> None:
        self.limiter = limiter
        self.bucket = limiter.bucket(scope, key)
        self._scope, self._key = scope, key
        self.taken = False

    async def settle(self) -> None:
        if not self.taken:
            self.taken = True
            await self.limiter.admit(self._scope, self._key)
