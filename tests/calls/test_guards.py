"""Rate limit, duplicate-click guard and Idempotency-Key (single flight)."""
import asyncio
import gc
import tracemalloc

import pytest

from c2c_ami.calls.guards import MAX_REMEMBERED, RateLimiter, SingleFlight
from c2c_ami.errors import Forbidden, InvalidParams, NoAnswer, PbxUnavailable, RateLimited


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limit_allows_burst_then_429_with_retry_after():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("a", "t")
    with pytest.raises(RateLimited) as info:
        limiter.check("a", "t")
    assert info.value.retry_after == 1
    limiter.check("a", "other")  # per token
    clock.now += 1.0
    limiter.check("a", "t")


async def test_concurrent_duplicates_share_one_call():
    flights = SingleFlight(ttl=5, remember_failures=False)
    release = asyncio.Event()
    started = []

    async def place():
        started.append(1)
        await release.wait()
        return "call-1"

    first = asyncio.create_task(flights.run("t", ("101", "0899"), "", place))
    second = asyncio.create_task(flights.run("t", ("101", "0899"), "", place))
    await asyncio.sleep(0)
    release.set()
    assert await first == await second == "call-1"
    assert started == [1]
    assert await flights.run("t", ("101", "0899"), "", place) == "call-1"


async def test_duplicate_guard_expires_and_forgets_failures():
    clock = Clock()
    flights = SingleFlight(ttl=5, remember_failures=False, clock=clock)
    calls = iter(["a", "b"])

    async def place():
        return next(calls)

    async def fail():
        raise NoAnswer("nobody")

    with pytest.raises(NoAnswer):
        await flights.run("t", ("k",), "", fail)
    assert await flights.run("t", ("k",), "", place) == "a"
    clock.now += 6
    assert await flights.run("t", ("k",), "", place) == "b"


async def test_idempotency_replays_failures_but_not_unplaced_ones():
    flights = SingleFlight(ttl=60, remember_failures=True)
    attempts = []

    async def busy():
        attempts.append("busy")
        raise NoAnswer("nobody", call_id="c1")

    for _ in range(2):
        with pytest.raises(NoAnswer) as info:
            await flights.run("t", ("idem",), "fp", busy)
        assert info.value.call_id == "c1"
    assert attempts == ["busy"]

    async def down():
        attempts.append("down")
        raise PbxUnavailable("down")

    for _ in range(2):
        with pytest.raises(PbxUnavailable):
            await flights.run("t", ("idem2",), "fp", down)
    assert attempts.count("down") == 2


async def test_idempotency_key_reuse_with_other_parameters_is_invalid():
    flights = SingleFlight(ttl=60, remember_failures=True)

    async def place():
        return "c"

    await flights.run("t", ("idem",), "fp1", place)
    with pytest.raises(InvalidParams, match="^Idempotency-Key: "):
        await flights.run("t", ("idem",), "fp2", place)


# -- bounded per tenant, joins only identical requests, failures not kept -------------------

async def test_replaying_a_failed_key_keeps_memory_flat_and_raises_a_fresh_error_each_time():
    """A kept exception re-raised on every replay grew its traceback without end (42 -> 623 MiB
    over 100,000 replays); a replay now raises a new error built from the kept answer."""
    flights = SingleFlight(ttl=60, remember_failures=True)

    async def forbidden():
        raise Forbidden("hotline: this hotline is not allowed for this token", call_id="c1")

    async def replay():
        try:
            await flights.run("t", ("idem",), "fp", forbidden)
        except Forbidden as exc:
            return exc
        raise AssertionError("the replay did not fail")

    first = await replay()
    tracemalloc.start()
    try:
        for _ in range(1_000):                 # warm-up: every cache and free list in place
            await replay()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            error = await replay()
            assert error.code == "FORBIDDEN" and error.message == first.message
        del error
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"100,000 replays kept {grown} bytes"
    second = await replay()
    assert second is not first and (second.code, second.message, second.call_id) == ("FORBIDDEN", first.message, "c1")


async def test_a_remembered_failure_costs_little_memory():
    """Every remembered failure cost ~7 KB (the exception, its traceback and frames)."""
    flights = SingleFlight(ttl=60, remember_failures=True)

    async def forbidden():
        raise Forbidden("ext: this extension is not allowed for this token")

    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(5_000):
            with pytest.raises(Forbidden):
                await flights.run("t", (f"crm-order-{n:08d}",), "f" * 64, forbidden)
        gc.collect()
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / 5_000
    finally:
        tracemalloc.stop()
    assert len(flights) == 5_000 and per_entry < 1_000, f"{per_entry:.0f} bytes per remembered failure"


async def test_a_repeat_click_after_the_window_places_a_new_call_while_another_request_runs():
    """While a request was in flight at the front of the cache, nothing behind it expired:
    the same click 9 s after its call ended got the old call_id and nobody was rung."""
    clock = Clock()
    flights = SingleFlight(ttl=5, remember_failures=False, clock=clock)
    slow_started, release = asyncio.Event(), asyncio.Event()

    async def slow():                          # a sync request waiting for its extension
        slow_started.set()
        await release.wait()
        return "slow-call"

    placed = []

    async def place():
        placed.append(f"call-{len(placed) + 1}")
        return placed[-1]

    slow_request = asyncio.create_task(flights.run("t", ("102", "0700"), "", slow))
    await slow_started.wait()
    assert await flights.run("t", ("101", "0899"), "", place) == "call-1"
    clock.now += 9                             # the call ended; 9 s later the same click
    assert await flights.run("t", ("101", "0899"), "", place) == "call-2"
    assert placed == ["call-1", "call-2"]
    release.set()
    assert await slow_request == "slow-call"


async def test_one_tenants_traffic_never_evicts_anothers_idempotency_keys():
    """One cache for every tenant: 100,010 requests of tenant B pushed out tenant A's key,
    whose replay then placed a second real call."""
    flights = SingleFlight(ttl=86400, remember_failures=True)
    placed = []

    async def place():
        placed.append(f"call-{len(placed) + 1}")
        return placed[-1]

    assert await flights.run("a", ("crm-1",), "fp", place) == "call-1"
    refused = 0
    for n in range(MAX_REMEMBERED + 10):
        try:
            await flights.run("b", (f"b-{n}",), "fp", place)
        except RateLimited:
            refused += 1
    assert await flights.run("a", ("crm-1",), "fp", place) == "call-1"
    assert placed.count("call-1") == 1 and refused == 10      # b refused only beyond its own bound


async def test_a_tenant_full_of_live_keys_is_refused_a_new_key_and_keeps_the_old_ones():
    clock = Clock()
    flights = SingleFlight(ttl=100, remember_failures=True, clock=clock, capacity=3)
    placed = []

    async def place():
        placed.append(f"call-{len(placed) + 1}")
        return placed[-1]

    for n in range(3):
        await flights.run("a", (f"k{n}",), "fp", place)
        clock.now += 10
    with pytest.raises(RateLimited) as info:
        await flights.run("a", ("k3",), "fp", place)
    assert info.value.retry_after == 70
    assert await flights.run("a", ("k0",), "fp", place) == "call-1"   # still replayed
    assert await flights.run("b", ("k3",), "fp", place) == "call-4"   # other tenants unaffected
    clock.now += 70                                                   # k0 expired: room again
    assert await flights.run("a", ("k3",), "fp", place) == "call-5"


def test_rate_limit_buckets_are_bounded_per_tenant():
    """A tenant with more keys than its bound forgets only its own least recent buckets."""
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, capacity=10)
    limiter.check("a", "crm")
    for n in range(100):
        limiter.check("b", f"ext-{n}")
    with pytest.raises(RateLimited):
        limiter.check("a", "crm")          # tenant a's bucket survived b's traffic
    with pytest.raises(RateLimited):
        limiter.check("b", "ext-99")       # b's most recent kept...
    limiter.check("b", "ext-0")            # ...its least recent forgotten (a fresh bucket)
