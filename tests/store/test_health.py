"""Whether the store answers, and the log of it: down once, once a minute while it stays
down, back once; a probe that gets no answer in time is an outage too."""
import asyncio
import logging

import pytest

from c2c_ami.errors import StoreUnavailable
from c2c_ami.store import StorageUnavailable, StoreHealth, keep_watch, store_needed
from c2c_ami.store import health as health_module


def test_an_outage_is_said_once_then_once_a_minute_then_its_end(caplog):
    now = [1000.0]
    health = StoreHealth("PostgreSQL", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="c2c_ami.store")
    for _ in range(500):                        # a query every 0.2 s for 100 s
        assert isinstance(health.failed("PostgreSQL: [Errno 111] Connect call failed"), StorageUnavailable)
        now[0] += 0.2
    assert not health.available and health.down_for() == pytest.approx(100)
    health.answered()
    health.answered()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["ERROR", "ERROR", "WARNING"]
    assert lines[0][1].startswith("store (PostgreSQL) unavailable: PostgreSQL: [Errno 111]")
    assert lines[1][1].startswith("store (PostgreSQL) still unavailable after 60 s (301 failed operations)")
    assert lines[2][1] == "store (PostgreSQL) is back after 100 s (500 failed operations meanwhile)"
    assert health.available and health.down_for() == 0


def test_where_an_answer_needs_the_store_its_outage_is_the_domains_error_without_the_detail():
    with pytest.raises(StoreUnavailable) as info, store_needed():
        raise StorageUnavailable("PostgreSQL: [Errno 111] Connect call failed ('10.0.0.5', 5432)")
    assert info.value.code == "STORE_UNAVAILABLE" and "10.0.0.5" not in info.value.message
    assert info.value.retry_after and info.value.__cause__ is None and info.value.__suppress_context__


async def test_an_idle_gateway_notices_by_its_probe_and_a_hung_store_counts(monkeypatch):
    monkeypatch.setattr(health_module, "PROBE_EVERY", 0.01)
    monkeypatch.setattr(health_module, "PROBE_DOWN_EVERY", 0.01)
    monkeypatch.setattr(health_module, "PROBE_TIMEOUT", 0.05)
    health, hung, probed = StoreHealth("SQLite"), asyncio.Event(), asyncio.Event()

    async def probe():
        probed.set()
        if not hung.is_set():
            health.answered()
            return
        await asyncio.sleep(10)
    watch = asyncio.create_task(keep_watch(health, probe))
    try:
        await asyncio.wait_for(probed.wait(), 2)
        assert health.available
        hung.set()
        async with asyncio.timeout(2):
            while health.available:
                await asyncio.sleep(0.01)
        hung.clear()
        async with asyncio.timeout(2):
            while not health.available:
                await asyncio.sleep(0.01)
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
