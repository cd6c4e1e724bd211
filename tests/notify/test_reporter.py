"""The call reporter stores every step in order, one transaction each, and keeps a write
(never drops it) while the store is unavailable."""
from c2c_ami.calls.call import Call
from c2c_ami.calls.registry import CallRegistry
from c2c_ami.config import StorageConfig
from c2c_ami.notify.reporter import CallReporter
from c2c_ami.notify.webhooks import WebhookNotifier
from c2c_ami.store import StorageUnavailable, open_storage


class FlakyStore:
    """The real store, unavailable for the first ``failures`` writes."""

    def __init__(self, store, failures):
        self.store, self.failures, self.attempts = store, failures, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def save_call_writes(self, writes):
        await self._maybe_fail()
        await self.store.save_call_writes(writes)

    async def _maybe_fail(self):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise StorageUnavailable("connection refused")


async def test_steps_are_stored_in_order_through_an_outage(storage_url):
    store = await open_storage(StorageConfig(url=storage_url))
    flaky = FlakyStore(store, failures=3)
    hook = await store.add_hook("acme", "http://x/", ["*"], "s")
    reporter = CallReporter(flaky, WebhookNotifier(flaky), retry_min=0.01)
    reporter.start()
    try:
        registry = CallRegistry(reporter)
        call = Call(tenant="acme", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="t")
        assert registry.claim(call)
        call.ext_ringing()
        registry.settle(call)
        call.ext_answered()
        registry.settle(call)
        registry.finish(call)
        assert await reporter.flush(5)
        assert flaky.attempts >= 3 + 1           # tried until the store answered
        assert await store.live_calls() == []    # the end came last and replaced the facts
        assert (await store.get_call("acme", call.call_id))["status"] == "FAILED"
        events = [(r["event"], r["hook_id"]) for r in await store.pending_deliveries(10)]
        assert events == [(e, hook["id"]) for e in ("ringing", "answered", "hangup", "cdr")]
    finally:
        await reporter.close()
        await store.close()


async def test_written_waits_for_what_was_queued_without_the_group_commit_linger(storage_url):
    """A live call's change lingers up to ``group_commit`` for company; ``written`` (the
    owner of a call answering another instance's call control) has it stored at once."""
    store = await open_storage(StorageConfig(url=storage_url))
    reporter = CallReporter(store, WebhookNotifier(store), group_commit=30.0)     # would linger 30 s
    reporter.start()
    try:
        registry = CallRegistry(reporter)
        call = Call(tenant="acme", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="t")
        assert registry.claim(call)
        call.ext_ringing()
        registry.settle(call)
        assert [c["state"] for c in await store.live_calls()] == []              # lingering
        assert await reporter.written(5)
        assert [c["state"] for c in await store.live_calls()] == ["ext_ringing"]
        assert await reporter.written(0.01)                                       # nothing more queued
    finally:
        await reporter.close(timeout=1)
        await store.close()


async def test_a_call_that_ends_after_its_claim_logs_one_end_with_its_outcome(storage_url):
    """``call_dropped`` is for a call refused before its Originate: a call that ran and ended
    is reported by its end alone (one ``ended`` state carrying the outcome, its CDR, hangup)."""
    import json
    store = await open_storage(StorageConfig(url=storage_url))
    reporter = CallReporter(store, WebhookNotifier(store), group_commit=0.0)
    reporter.start()
    try:
        registry = CallRegistry(reporter)
        call = Call(tenant="acme", ext="101", device="PJSIP/101", phone="0899", hotline="028", trunk="t")
        assert registry.claim(call)
        registry.stored(call)                  # as its claim does with the opening state
        call.ext_ringing()
        registry.settle(call)
        registry.finish(call)
        assert await reporter.flush(5)
        states = [json.loads(row["data"]) for row in await store.events_after("acme", 0, 20)
                  if row["event"] == "state"]
        assert [(e["call_state"], e["status"]) for e in states if e["call_state"] == "ended"] == [("ended", "FAILED")]
        assert (await store.get_call("acme", call.call_id))["status"] == "FAILED"
    finally:
        await reporter.close()
        await store.close()
