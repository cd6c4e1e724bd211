"""Abuse guards: per-token rate limit (applied to every API request), and the duplicate-click
guard and Idempotency-Key (applied by the call service when it places a call).

A CRM's double click, or a client retrying after a timeout, must not ring the agent twice:
the second request joins the first one (single flight) and gets the same answer and the same
call_id. Both caches are bounded in time and size.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import C2CError, InvalidParams, PbxUnavailable, RateLimited

MAX_REMEMBERED = 100_000


class Limiter(Protocol):
    """Admits one request of a key, or raises RateLimited."""

    async def admit(self, key: bytes) -> None: ...


class RateLimiter:
    """Token bucket per key (a token's digest): ``rate`` requests per minute, ``burst`` at once."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def check(self, key: bytes) -> None:
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(f"rate limit exceeded; retry in {retry} s", headers={"Retry-After": str(retry)})
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > MAX_REMEMBERED:
            self._buckets.popitem(last=False)

    async def admit(self, key: bytes) -> None:
        """``check``, as every limiter is asked (the shared one asks the store)."""
        self.check(key)


@dataclass
class _Flight:
    fingerprint: str
    expires: float
    future: asyncio.Future  # resolves to ("success", call_id) or a C2CError


def forgettable(error: C2CError) -> bool:
    """Answers that placed no call are not remembered: a retry may then really try."""
    return isinstance(error, (RateLimited, PbxUnavailable)) and error.call_id is None


class SingleFlight:
    """Joins requests with the same key while the first is running and for ``ttl`` after.

    ``remember_failures``: the duplicate-click guard forgets failed attempts (a new click
    after NO_ANSWER should ring again); Idempotency-Key replays every final answer."""

    def __init__(self, ttl: float, remember_failures: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.remember_failures = remember_failures
        self.clock = clock
        self._flights: OrderedDict[tuple, _Flight] = OrderedDict()

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: tuple, fingerprint: str, start: Callable[[], Awaitable[str]]) -> str:
        """Return the call_id of the first request with this key, starting it if needed."""
        self._prune()
        flight = self._flights.get(key)
        if flight is not None:
            if flight.fingerprint != fingerprint:
                raise InvalidParams("Idempotency-Key: already used with different parameters")
            return await _result_of(asyncio.shield(flight.future))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        flight = _Flight(fingerprint, self.clock() + self.ttl, future)
        self._flights[key] = flight
        try:
            call_id = await start()
        except C2CError as exc:
            future.set_result(exc)
            if forgettable(exc) or not self.remember_failures:
                self._drop(key, flight)
            raise
        except BaseException as exc:
            future.set_result(PbxUnavailable("the first request with this key was interrupted"))
            self._drop(key, flight)
            raise exc
        future.set_result(("success", call_id))
        flight.expires = self.clock() + self.ttl
        return call_id

    def _drop(self, key: tuple, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    def _prune(self) -> None:
        now = self.clock()
        while self._flights:
            key, flight = next(iter(self._flights.items()))
            if flight.future.done() and flight.expires <= now or len(self._flights) > MAX_REMEMBERED:
                del self._flights[key]
            else:
                break


async def _result_of(future: Awaitable) -> str:
    result = await future
    if isinstance(result, C2CError):
        raise result
    return result[1]


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
