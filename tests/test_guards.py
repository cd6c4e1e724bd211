"""Rate limit, duplicate-click guard and Idempotency-Key (single flight)."""
import asyncio

import pytest

from c2c_ami.calls.guards import RateLimiter, SingleFlight
from c2c_ami.errors import InvalidParams, NoAnswer, PbxUnavailable, RateLimited


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limit_allows_burst_then_429_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.check(b"t")
    with pytest.raises(RateLimited) as info:
        limiter.check(b"t")
    assert info.value.http_status == 429 and info.value.headers["Retry-After"] == "1"
    limiter.check(b"other")  # per token
    clock.now += 1.0
    limiter.check(b"t")


async def test_concurrent_duplicates_share_one_call():
    flights = SingleFlight(ttl=5, remember_failures=False)
    release = asyncio.Event()
    started = []

    async def place():
        started.append(1)
        await release.wait()
        return "call-1"

    first = asyncio.create_task(flights.run(("t", "101", "0899"), "", place))
    second = asyncio.create_task(flights.run(("t", "101", "0899"), "", place))
    await asyncio.sleep(0)
    release.set()
    assert await first == await second == "call-1"
    assert started == [1]
    assert await flights.run(("t", "101", "0899"), "", place) == "call-1"


async def test_duplicate_guard_expires_and_forgets_failures():
    clock = Clock()
    flights = SingleFlight(ttl=5, remember_failures=False, clock=clock)
    calls = iter(["a", "b"])

    async def place():
        return next(calls)

    async def fail():
        raise NoAnswer("nobody")

    with pytest.raises(NoAnswer):
        await flights.run(("k",), "", fail)
    assert await flights.run(("k",), "", place) == "a"
    clock.now += 6
    assert await flights.run(("k",), "", place) == "b"


async def test_idempotency_replays_failures_but_not_unplaced_ones():
    flights = SingleFlight(ttl=60, remember_failures=True)
    attempts = []

    async def busy():
        attempts.append("busy")
        raise NoAnswer("nobody", call_id="c1")

    for _ in range(2):
        with pytest.raises(NoAnswer) as info:
            await flights.run(("idem",), "fp", busy)
        assert info.value.call_id == "c1"
    assert attempts == ["busy"]

    async def down():
        attempts.append("down")
        raise PbxUnavailable("down")

    for _ in range(2):
        with pytest.raises(PbxUnavailable):
            await flights.run(("idem2",), "fp", down)
    assert attempts.count("down") == 2


async def test_idempotency_key_reuse_with_other_parameters_is_invalid():
    flights = SingleFlight(ttl=60, remember_failures=True)

    async def place():
        return "c"

    await flights.run(("idem",), "fp1", place)
    with pytest.raises(InvalidParams, match="^Idempotency-Key: "):
        await flights.run(("idem",), "fp2", place)
