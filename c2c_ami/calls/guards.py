"""Abuse guards: rate limits (per token on every API request, per extension on clicks), and
the duplicate-click guard and Idempotency-Key (applied by the call service when it places a
call).

A CRM's double click, or a client retrying after a timeout, must not ring the agent twice:
the second request joins the first one (single flight) and gets the same answer and the same
call_id. Every guard keeps its state per tenant, each tenant within its own bound, so one
tenant's traffic never pushes out another's keys or buckets.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import (
    C2CError,
    InvalidParams,
    PbxUnavailable,
    PhoneBlacklisted,
    RateLimited,
    StoreUnavailable,
    error_from,
)

MAX_REMEMBERED = 100_000     # per tenant: request keys of one guard, or buckets of one limiter


class Limiter(Protocol):
    """Admits one request of ``key`` within ``scope`` (a tenant), or raises RateLimited."""

    async def admit(self, scope: str, key: str) -> None: ...


class RateLimiter:
    """Token bucket per key: ``per_minute`` requests per minute, ``burst`` at once.

    Buckets are kept per scope (tenant), least recently used first; a bucket untouched long
    enough to be full again is the same as no bucket, so it is forgotten first."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic, *,
                 what: str = "rate limit", capacity: int = MAX_REMEMBERED) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.what = what
        self.capacity = capacity
        self._scopes: dict[str, OrderedDict[str, tuple[float, float]]] = {}

    def peek(self, scope: str, key: str) -> None:
        """RateLimited if ``check`` would refuse now, without taking anything."""
        buckets = self._scopes.get(scope)
        tokens, last = buckets.get(key, (self.burst, 0.0)) if buckets is not None else (self.burst, 0.0)
        tokens = min(self.burst, tokens + (self.clock() - last) * self.rate)
        if tokens < 1.0:
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(f"{self.what} exceeded; retry in {retry} s", retry_after=retry)

    def check(self, scope: str, key: str) -> None:
        buckets = self._scopes.setdefault(scope, OrderedDict())
        now = self.clock()
        tokens, last = buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            buckets[key] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(f"{self.what} exceeded; retry in {retry} s", retry_after=retry)
        buckets[key] = (tokens - 1.0, now)
        self._forget(buckets, now)

    def _forget(self, buckets: OrderedDict[str, tuple[float, float]], now: float) -> None:
        refilled = now - self.burst / self.rate
        while buckets:
            key, (_, last) = next(iter(buckets.items()))
            if last > refilled and len(buckets) <= self.capacity:
                return
            del buckets[key]      # full again (nothing lost), or over the bound: the least recent

    async def admit(self, scope: str, key: str) -> None:
        """``check``, as every limiter is asked (the shared one asks the store)."""
        self.check(scope, key)


@dataclass(frozen=True, slots=True)
class Failure:
    """A remembered failed answer, as plain data: each replay raises a fresh error built from
    it (a kept exception object would grow its traceback on every raise, and hold frames)."""
    code: str
    message: str
    call_id: str | None
    retry_after: int | None

    @classmethod
    def of(cls, error: C2CError) -> Failure:
        return cls(error.code, error.message, error.call_id, error.retry_after)

    def error(self) -> C2CError:
        return error_from(self.code, self.message, self.call_id, self.retry_after)


Answer = str | Failure          # a call_id, or why not


@dataclass(slots=True)
class _Running:
    fingerprint: str
    answer: asyncio.Future[Answer]


@dataclass(frozen=True, slots=True)
class _Kept:
    fingerprint: str
    expires: float
    answer: Answer


@dataclass(slots=True)
class _Book:
    """One tenant's keys: requests still running apart from kept answers, so a long-running
    request never holds expired answers in place; answers are kept in order of expiry."""
    running: dict[tuple, _Running] = field(default_factory=dict)
    kept: OrderedDict[tuple, _Kept] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self.running) + len(self.kept)

    def prune(self, now: float) -> None:
        while self.kept:
            key, kept = next(iter(self.kept.items()))
            if kept.expires > now:
                return
            del self.kept[key]

    def answer(self, key: tuple, now: float) -> _Kept | None:
        kept = self.kept.get(key)
        if kept is not None and kept.expires <= now:     # past its time: never joined
            del self.kept[key]
            return None
        return kept


def forgettable(error: C2CError) -> bool:
    """Answers that placed no call are not remembered: a retry may then really try."""
    return isinstance(error, (RateLimited, PbxUnavailable, StoreUnavailable, PhoneBlacklisted)) and \
        error.call_id is None


class SingleFlight:
    """Joins requests with the same key while the first is running and for ``ttl`` after.

    ``remember_failures``: the duplicate-click guard forgets failed attempts (a new click
    after NO_ANSWER should ring again); Idempotency-Key replays every final answer.

    Each tenant keeps at most ``capacity`` keys. A tenant whose keys are all still live gets
    RATE_LIMITED for a new key: forgetting a live key could let its replay place a second call."""

    def __init__(self, ttl: float, remember_failures: bool, clock: Callable[[], float] = time.monotonic, *,
                 capacity: int = MAX_REMEMBERED) -> None:
        self.ttl = ttl
        self.remember_failures = remember_failures
        self.clock = clock
        self.capacity = capacity
        self._books: dict[str, _Book] = {}

    def __len__(self) -> int:
        return sum(len(book) for book in self._books.values())

    async def run(self, tenant: str, key: tuple, fingerprint: str, start: Callable[[], Awaitable[str]]) -> str:
        """Return the call_id of the first request with this key, starting it if needed."""
        book = self._books.setdefault(tenant, _Book())
        now = self.clock()
        book.prune(now)
        known = book.running.get(key) or book.answer(key, now)
        if known is not None:
            if known.fingerprint != fingerprint:
                raise InvalidParams("Idempotency-Key: already used with different parameters")
            answer = known.answer if isinstance(known, _Kept) else await asyncio.shield(known.answer)
            return _given(answer)
        if len(book) >= self.capacity:
            raise self._full(book, now)
        running = _Running(fingerprint, asyncio.get_running_loop().create_future())
        book.running[key] = running
        try:
            call_id = await start()
        except C2CError as exc:
            self._settle(book, key, running, Failure.of(exc), keep=self.remember_failures and not forgettable(exc))
            raise
        except BaseException:
            self._settle(book, key, running, Failure.of(
                PbxUnavailable("the first request with this key was interrupted")), keep=False)
            raise
        self._settle(book, key, running, call_id, keep=True)
        return call_id

    def _settle(self, book: _Book, key: tuple, running: _Running, answer: Answer, *, keep: bool) -> None:
        running.answer.set_result(answer)
        if book.running.get(key) is running:
            del book.running[key]
        if keep:
            book.kept[key] = _Kept(running.fingerprint, self.clock() + self.ttl, answer)
            book.kept.move_to_end(key)

    def _full(self, book: _Book, now: float) -> RateLimited:
        oldest = next(iter(book.kept.values()), None)
        retry = max(1, math.ceil(oldest.expires - now)) if oldest is not None else 1
        return RateLimited(f"too many request keys still remembered for this tenant ({self.capacity}); "
                           f"retry in {retry} s", retry_after=retry)


def _given(answer: Answer) -> str:
    if isinstance(answer, Failure):
        raise answer.error()
    return answer


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
