"""Keeping live calls true across lost AMI links and gateway restarts.

A lost link is not a call's end: the PBX's calls become *unobserved* (a waiting sync request
is answered ``PBX_UNAVAILABLE`` with the call_id; nothing is finished, nothing invented).
Calls left by a previous run, or by another instance that died (``calls/cluster.py``), are
adopted from their stored facts, unobserved; what this instance's own AMI links saw of them
meanwhile (``pbx/journal.py``) is replayed first, with the times it was seen. Whenever a PBX's link is
(again) ready, the PBX is asked which channels are up (``CoreShowChannels``; every leg of a
click-to-call has Linkedid = call_id) and each of its unobserved calls is

* still up: its legs are brought up to date (``pbx/events.py: apply_channels``) and it is
  tracked again to its end, by events as usual (cancel works again);
* gone: it ended while nobody watched; it is finished with its last known state, ended when
  it was last known up, and marked ``ended_unobserved``.

Events that arrive between the reconnect and the snapshot are applied as usual, so a call
whose hangup they carry ends observed. Calls of a PBX that is no longer configured, or whose
PBX stays away, end unobserved after ``max_call_seconds``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from ..calls.call import Call
from ..calls.pbx_port import Channel
from ..calls.registry import CallRegistry
from ..store import Storage
from ..waits import Background
from .actions import Pbx
from .ami import AmiError
from .events import CallEvents, apply_channels, decide_pending_failure

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, pbxs: Mapping[str, Pbx], registry: CallRegistry, store: Storage,
                 events: Mapping[str, CallEvents], hangup: Callable[[str], None]) -> None:
        self.pbxs = pbxs
        self.registry = registry
        self.store = store
        self.events = events      # per PBX: the translator, whose journal adopted calls replay
        self.hangup = hangup      # hang up a live call's extension leg (a cancel asked meanwhile)
        self.runs = 0          # reconciliations completed (for tests and metrics)
        self._done = asyncio.Event()
        self._background = Background()

    def adopt(self, stored: list[dict[str, Any]], whence: str = "a previous run") -> int:
        """Track calls again from their stored facts (``Storage.take_over``): each is
        unobserved until its PBX is asked; what was seen of it meanwhile is replayed first,
        and a cancel asked meanwhile is carried out. Returns how many."""
        adopted = 0
        to_ask: set[str] = set()
        for facts in stored:
            call = Call.from_facts(facts)
            call.unobserved(call.unobserved_since or facts.get("saved_at") or time.time())
            if not self.registry.adopt(call):
                continue
            adopted += 1
            if call.pbx not in self.pbxs:
                log.warning("call %s: its PBX %r is no longer configured; ended as unobserved",
                            call.call_id, call.pbx)
                self.registry.finish_unseen(call)
                continue
            self.registry.suspend_call(call)
            if facts.get("cancel_requested_via_api"):
                call.cancel()
            self.events[call.pbx].replay(call.call_id)
            if self.registry.get(call.call_id) is call and self.pbxs[call.pbx].ready:
                to_ask.add(call.pbx)        # else: asked when its link is ready
        for pbx in to_ask:
            self._background.spawn(self.reconcile(pbx))
        if adopted:
            log.info("adopted %d live call(s) left by %s", adopted, whence)
        return adopted

    def link_ready(self, pbx: str) -> None:
        """The PBX's AMI link is (again) logged in: ask it about the calls out of sight."""
        self._background.spawn(self.reconcile(pbx))

    def link_lost(self, pbx: str) -> None:
        """The PBX's AMI link dropped: its calls go out of sight (none is finished)."""
        calls = self.registry.suspend(pbx, time.time())
        if calls:
            log.warning("PBX %s: link lost with %d live call(s); they are checked again on reconnect",
                        pbx, len(calls))

    async def reconcile(self, pbx_name: str) -> int:
        """Ask the PBX which channels are up and settle its unobserved calls; returns how many
        ended unobserved. If the PBX cannot answer, they stay unobserved until the next try."""
        calls = [c for c in self.registry.live(pbx=pbx_name) if c.unobserved_since is not None]
        if not calls:
            self._finished_run()
            return 0
        try:
            channels = await self.pbxs[pbx_name].channels()
        except AmiError as exc:
            log.warning("PBX %s: cannot list channels to reconcile %d call(s): %s", pbx_name, len(calls), exc)
            return 0
        legs: dict[str, list[Channel]] = defaultdict(list)
        by_uniqueid = {channel.uniqueid: channel for channel in channels}
        for channel in channels:
            legs[channel.linkedid].append(channel)
        ended = 0
        for call in calls:
            if self.registry.get(call.call_id) is not call:
                continue                       # ended, observed, while we asked
            own = legs.get(call.call_id, [])   # and call control's legs not (yet) linked to it
            own = own + [by_uniqueid[u] for u in call.leg_ids() if u in by_uniqueid and by_uniqueid[u] not in own]
            if own:
                apply_channels(call, own)
                call.observed()
                if call.record and call.customer_up and call.recording_started_at is None:
                    self.events[pbx_name].actions.record_later(call.call_id)   # answered while away
                self.registry.settle(call)
                log.info("call %s: still up on PBX %s, tracked again", call.call_id, pbx_name)
                if call.cancel_requested and call.ext_channel and self.registry.get(call.call_id) is call:
                    self.hangup(call.call_id)
            else:
                decide_pending_failure(call)   # an Originate failure already known is kept
                self.registry.finish_unseen(call)
                ended += 1
        self._finished_run()
        return ended

    async def wait_run(self, runs: int, timeout: float) -> bool:
        """Tests: wait until ``runs`` reconciliations have completed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.runs < runs:
            self._done.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await self._done.wait()
            except TimeoutError:
                return self.runs >= runs
        return True

    def _finished_run(self) -> None:
        self.runs += 1
        self._done.set()

    async def close(self) -> None:
        await self._background.close()
