"""Whether the store answers, and the log of it.

Every session of a backend reports here: a ``StorageUnavailable`` (the server is down or
unreachable, the connection broke, the file is locked or the disk failed) marks the store
down, any query that succeeds marks it back. ``keep_watch`` asks it ``SELECT 1`` every few
seconds (every second while it is down), so an idle gateway notices too and ``/readyz`` says
so. The log says it once: the store is down (with the driver's reason, which may name the
database's address: for the operator, never for a client), then once a minute while it stays
down, then that it is back, however many queries fail meanwhile.

Where an answer needs the store, ``store_needed`` turns the outage into the domain's
``StoreUnavailable`` (503 ``STORE_UNAVAILABLE``, with no address, errno or driver text).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from ..errors import StoreUnavailable
from .base import StorageUnavailable

log = logging.getLogger("c2c_ami.store")

SAY_AGAIN_EVERY = 60.0      # seconds between two "still down" lines
PROBE_EVERY = 5.0           # seconds between two probes while the store answers...
PROBE_DOWN_EVERY = 1.0      # ...and while it does not
PROBE_TIMEOUT = 5.0         # a probe unanswered this long: down


class StoreHealth:
    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name                    # "SQLite", "PostgreSQL"
        self.clock = clock
        self.down_since: float | None = None
        self.failures = 0                   # failed operations in this outage
        self._said_at = 0.0

    @property
    def available(self) -> bool:
        return self.down_since is None

    def down_for(self) -> float:
        """Seconds the store has been down (0 while it answers)."""
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def failed(self, detail: str) -> StorageUnavailable:
        """A query failed because the store did not answer: the error to raise."""
        now = self.clock()
        self.failures += 1
        if self.down_since is None:
            self.down_since = self._said_at = now
            log.error("store (%s) unavailable: %s; requests that need it answer 503 STORE_UNAVAILABLE, "
                      "call writes are kept and retried", self.name, detail)
        elif now - self._said_at >= SAY_AGAIN_EVERY:
            self._said_at = now
            log.error("store (%s) still unavailable after %.0f s (%d failed operations): %s",
                      self.name, now - self.down_since, self.failures, detail)
        return StorageUnavailable(detail)

    def answered(self) -> None:
        """A query succeeded."""
        if self.down_since is not None:
            log.warning("store (%s) is back after %.0f s (%d failed operations meanwhile)",
                        self.name, self.clock() - self.down_since, self.failures)
            self.down_since, self.failures = None, 0


async def keep_watch(health: StoreHealth, probe: Callable[[], Awaitable[object]]) -> None:
    """Probe the store forever (a task): every ``PROBE_EVERY`` seconds, every
    ``PROBE_DOWN_EVERY`` while it is down. The probe's own session reports its outcome."""
    while True:
        await asyncio.sleep(PROBE_EVERY if health.available else PROBE_DOWN_EVERY)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await probe()
        except StorageUnavailable:
            pass                            # reported by the session
        except TimeoutError:
            health.failed(f"no answer to a probe within {PROBE_TIMEOUT:g} s")
        except Exception:
            log.exception("store probe failed")


@contextlib.contextmanager
def store_needed() -> Iterator[None]:
    """Where an answer needs the store: its outage is the domain's ``StoreUnavailable``."""
    try:
        yield
    except StorageUnavailable:
        raise StoreUnavailable() from None
