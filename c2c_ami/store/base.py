"""What the gateway needs from a database: the ``Storage`` interface.

Every read and delete that concerns tenant data takes the tenant and never returns or
touches another tenant's rows. The outbox is global (its rows belong to a hook, which
belongs to a tenant) because only the webhook notifier reads it. Each method that writes
more than one row does so in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

MAX_PAGE = 500


class StorageError(RuntimeError):
    """The database cannot be used (e.g. its schema is newer than this code)."""


class StorageUnavailable(StorageError):
    """The database did not answer (connection lost, server down, file locked): trying the
    same thing again later may work."""


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery to queue: ``body`` is the signed-over JSON."""
    hook_id: str
    call_id: str
    event: str
    body: bytes


@dataclass(frozen=True)
class CallWrite:
    """What one step of a call stores: its live facts (or, once it ended, its CDR ``record``,
    which replaces them) and the webhook deliveries of that step."""
    call_id: str
    tenant: str
    pbx: str
    facts: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    deliveries: tuple[Delivery, ...] = ()


class Storage(Protocol):
    backend: str            # sqlite or postgresql
    schema_version: int

    # calls (CDRs)
    async def save_call(self, record: dict[str, Any]) -> None: ...
    async def get_call(self, tenant: str, call_id: str) -> dict[str, Any] | None: ...
    async def list_calls(self, tenant: str, *, start_date: str | None = None,
                         end_date: str | None = None, extension: str | None = None,
                         phone: str | None = None, status: str | None = None,
                         limit: int = 50, page: int = 1) -> tuple[list[dict[str, Any]], int]: ...
    # live calls: their durable facts while up, and the end (CDR) that replaces them
    async def save_call_writes(self, writes: list[CallWrite]) -> None: ...
    async def live_calls(self, pbx: str | None = None) -> list[dict[str, Any]]: ...
    # webhook subscriptions
    async def add_hook(self, tenant: str, url: str, events: list[str], secret: str) -> dict[str, Any]: ...
    async def list_hooks(self, tenant: str) -> list[dict[str, Any]]: ...
    async def hooks_for(self, tenant: str, event: str) -> list[dict[str, Any]]: ...
    async def delete_hook(self, tenant: str, hook_id: str) -> bool: ...
    # webhook outbox
    async def enqueue(self, hook_id: str, call_id: str, event: str, body: bytes, *,
                      now: float | None = None) -> int: ...
    async def pending_deliveries(self, limit: int) -> list[dict[str, Any]]: ...
    async def due_deliveries(self, now: float, per_hook: int) -> list[dict[str, Any]]: ...
    async def next_due_at(self, after: float) -> float | None: ...
    async def mark_delivered(self, delivery_id: int) -> None: ...
    async def mark_retry(self, delivery_id: int, attempts: int, next_attempt_at: float,
                         error: str) -> None: ...
    async def mark_dead(self, delivery_id: int, error: str) -> None: ...
    async def outbox_counts(self) -> dict[str, int]: ...
    async def close(self) -> None: ...
