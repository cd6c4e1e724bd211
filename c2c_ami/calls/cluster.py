"""This gateway instance among others on one store: who owns each live call, who is alive.

Each instance holds a lease in the store (``instances``), renewed every third of
``cluster.lease_seconds``. A live call belongs to the instance that placed it (or adopted it).
An instance whose lease has ended is dead: the first survivor to notice takes its live calls
over (one statement: each call goes to exactly one instance) and adopts them
(``pbx/reconcile.py``): what its own AMI links saw of them meanwhile is replayed, then the
PBX is asked. A clean stop ends the lease at once, so survivors adopt without waiting.

With SQLite one process owns the store: at start it takes every live call over, and has no
lease to keep nor anyone to adopt from afterwards.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from ..store import Storage, StorageError, StorageUnavailable
from .registry import CallRegistry

log = logging.getLogger(__name__)


class Adopter(Protocol):
    """Who tracks again the calls taken over (``pbx/reconcile.py``'s ``Reconciler``)."""

    def adopt(self, stored: list[dict[str, Any]], whence: str = ...) -> int: ...


class Membership:
    def __init__(self, store: Storage, registry: CallRegistry, reconciler: Adopter, instance_id: str,
                 lease_seconds: float, *, sole_owner: bool) -> None:
        self.store = store
        self.registry = registry
        self.reconciler = reconciler
        self.instance_id = instance_id
        self.lease_seconds = lease_seconds
        self.sole_owner = sole_owner
        self._task: asyncio.Task | None = None

    async def join(self) -> None:
        """Take the lease, adopt what is ours to adopt — the calls of ended leases, and those
        our own previous process left (a restart under the same id renews the lease at once:
        no other instance would ever adopt them) — then keep the lease."""
        await self.store.heartbeat(self.instance_id, time.time() + self.lease_seconds)
        stored = await self.store.take_over(self.instance_id, everything=self.sole_owner, own=True)
        self.reconciler.adopt(stored)
        if not self.sole_owner:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-membership")

    async def leave(self) -> None:
        """A clean stop: the lease ends now, so other instances adopt the calls left live."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.store.leave(self.instance_id)
        except StorageError as exc:
            log.warning("could not end this instance's lease (%s); others adopt its calls when it expires", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.tick()
            except StorageUnavailable:
                pass            # the store's health logs the outage; the lease is renewed on the next try
            except StorageError as exc:
                log.warning("cluster: store unusable (%s); the lease is renewed on the next try", exc)

    async def tick(self) -> None:
        """Renew the lease; adopt the calls of instances whose lease ended."""
        if not await self.store.heartbeat(self.instance_id, time.time() + self.lease_seconds):
            await self._declared_dead()
        await self.store.prune(time.time())     # request keys past their time
        stored = await self.store.take_over(self.instance_id)
        if stored:
            self.reconciler.adopt(stored, whence="an instance whose lease ended")

    async def _declared_dead(self) -> None:
        """Our lease had ended (a long pause, a partition): others may have adopted our calls.
        Stop tracking those that are no longer ours, without reporting anything about them."""
        for call in self.registry.live():
            row = await self.store.live_call(call.call_id)
            if row is not None and row["owner"] != self.instance_id:
                log.error("call %s: adopted by instance %s while this one was out of touch; dropped here",
                          call.call_id, row["owner"])
                self.registry.forget(call)
