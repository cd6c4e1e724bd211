"""What the gateway needs from a database: the ``Storage`` interface.

Every read and delete that concerns tenant data takes the tenant and never returns or
touches another tenant's rows. The outbox is global (its rows belong to a hook, which
belongs to a tenant) because only the webhook notifier reads it. Each method that writes
more than one row does so in one transaction.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .health import StoreHealth

MAX_PAGE = 500
COUNT_CAP = 10_000     # a CDR listing counts its matches up to this (or its page's end), no further


class StorageError(RuntimeError):
    """The database cannot be used (e.g. its schema is newer than this code)."""


class StorageUnavailable(StorageError):
    """The database did not answer (connection lost, server down, file locked): trying the
    same thing again later may work."""


class HookLimitReached(ValueError):
    """The tenant already has as many webhooks as it may."""


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery to queue: ``body`` is the signed-over JSON."""
    hook_id: str
    call_id: str
    event: str
    body: bytes


@dataclass(frozen=True)
class LogEvent:
    """One event for a tenant's event log (GET /v1/events/stream): its name, the extension it
    is about (an extension-scoped stream sees only its own), and its JSON ``data``."""
    tenant: str
    event: str
    data: str
    ext: str | None = None
    call_id: str | None = None


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
    events: tuple[LogEvent, ...] = ()       # for the tenant's event log, in this order


@dataclass(frozen=True)
class Bucket:
    """A token bucket to take one token from: ``rate`` tokens per second, at most ``burst``."""
    key: str
    rate: float
    burst: float


@dataclass(frozen=True)
class RequestKey:
    """A request key (duplicate click, Idempotency-Key) to take while it is free or expired."""
    scope: str
    key: str
    fingerprint: str
    owner: str
    expires_at: float


@dataclass(frozen=True)
class LiveClaim:
    """A new live call, owned by ``owner``, holding its extension (``device`` on ``pbx``)."""
    call_id: str
    tenant: str
    pbx: str
    device: str
    owner: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class ClickClaim:
    """What a click takes, in this order, each only if everything before it was granted: a
    token of each of ``buckets``; then, unless ``listed`` (``(tenant, number)``) is on the
    tenant's do-not-call list, its request ``key``, a token of each of ``key_buckets`` (limits
    that count only requests that would start a call), the live ``call`` and, with it, the
    call's first ``events`` in its tenant's event log."""
    buckets: tuple[Bucket, ...]
    key: RequestKey
    key_buckets: tuple[Bucket, ...]
    call: LiveClaim
    listed: tuple[str, str] | None = None
    events: tuple[LogEvent, ...] = ()


@dataclass(frozen=True)
class ClickClaimed:
    """``claim_click``'s answer: what refused (None: everything was taken). ``bucket``: the
    refusing bucket (the ``buckets`` then the ``key_buckets``, counted together) and its
    ``tokens`` left; ``held``: the key's holder (``fingerprint``, ``owner``, ``answer``);
    ``key_taken``: the key is this click's (a refusal after it: the caller lets it go)."""
    refused: str | None = None          # None, "bucket", "listed", "key" or "call"
    bucket: int | None = None
    tokens: float = 0.0
    held: dict[str, Any] | None = None
    key_taken: bool = False


class Storage(Protocol):
    backend: str            # sqlite or postgresql
    schema_version: int
    health: StoreHealth     # whether it answers (store/health.py)

    async def ping(self) -> None: ...

    # calls (CDRs)
    async def save_call(self, record: dict[str, Any]) -> None: ...
    async def get_call(self, tenant: str, call_id: str) -> dict[str, Any] | None: ...
    async def find_call(self, tenant: str, call_or_sip_id: str) -> dict[str, Any] | None: ...
    async def list_calls(self, tenant: str, *, start_date: str | None = None,
                         end_date: str | None = None, extension: str | None = None,
                         phone: str | None = None, status: str | None = None,
                         customer_id: str | None = None, limit: int = 50, page: int = 1,
                         offset: int | None = None) -> tuple[list[dict[str, Any]], int, bool]: ...
    async def scroll_calls(self, tenant: str, *, start_date: str | None = None,
                           end_date: str | None = None, extension: str | None = None,
                           phone: str | None = None, status: str | None = None,
                           customer_id: str | None = None, limit: int = 50,
                           after: tuple[str, str] | None = None) -> list[dict[str, Any]]: ...
    # live calls: their durable facts while up, and the end (CDR) that replaces them
    async def save_call_writes(self, writes: list[CallWrite]) -> None: ...
    async def live_calls(self, pbx: str | None = None) -> list[dict[str, Any]]: ...
    # several instances: who owns each live call (and holds its extension), who is alive
    async def claim_call(self, call_id: str, tenant: str, pbx: str, device: str, owner: str,
                         facts: dict[str, Any]) -> bool: ...
    async def claim_click(self, claim: ClickClaim) -> ClickClaimed: ...
    async def release_call(self, call_id: str) -> None: ...
    async def live_call(self, call_id: str) -> dict[str, Any] | None: ...
    async def live_calls_of(self, tenant: str) -> list[dict[str, Any]]: ...
    async def request_cancel(self, call_id: str) -> str | None: ...
    async def heartbeat(self, instance_id: str, lease_until: float) -> bool: ...
    async def leave(self, instance_id: str) -> None: ...
    async def take_over(self, owner: str, *, everything: bool = False, own: bool = False) -> list[dict[str, Any]]: ...
    async def instances(self) -> list[dict[str, Any]]: ...
    async def notify(self, channel: str, payload: str) -> None: ...
    async def listen(self, channel: str, callback: Callable[[str], None]) -> None: ...
    # request keys (duplicate clicks, Idempotency-Key) and rate buckets, shared by instances
    async def claim_request(self, scope: str, key: str, fingerprint: str, owner: str,
                            expires_at: float) -> dict[str, Any] | None: ...
    async def request_answer(self, scope: str, key: str) -> dict[str, Any] | None: ...
    async def answer_request(self, scope: str, key: str, answer: str, expires_at: float) -> None: ...
    async def drop_request(self, scope: str, key: str) -> None: ...
    async def prune(self, now: float) -> None: ...
    async def take_token(self, key: str, rate: float, burst: float) -> tuple[bool, float]: ...
    # the do-not-call list: ``phone`` is a number's compared form (E.164 by region, or digits)
    async def add_blacklisted(self, tenant: str, entries: Sequence[tuple[str, str, str]]) -> set[str]: ...
    async def remove_blacklisted(self, tenant: str, phones: Sequence[str]) -> set[str]: ...
    async def list_blacklisted(self, tenant: str, *, limit: int,
                               offset: int) -> tuple[list[dict[str, Any]], int]: ...
    async def get_blacklisted(self, tenant: str, id_or_phone: str, phone: str) -> dict[str, Any] | None: ...
    async def is_blacklisted(self, tenant: str, phone: str) -> bool: ...
    # the event log (GET /v1/events/stream): per tenant, in ``seq`` order
    async def log_events(self, events: Sequence[LogEvent]) -> None: ...
    async def read_events(self, cursors: Mapping[str, int], limit: int) -> list[dict[str, Any]]: ...
    async def events_after(self, tenant: str, seq: int, limit: int) -> list[dict[str, Any]]: ...
    async def event_head(self, tenant: str) -> tuple[int, int]: ...
    async def purge_events(self, before: float, limit: int) -> int: ...
    async def log_agent_rows(self, tenant: str, rows: Sequence[tuple[str, str]]) -> list[str]: ...
    async def take_lease(self, name: str, owner: str, until: float) -> bool: ...
    # webhook subscriptions
    async def add_hook(self, tenant: str, url: str, events: list[str], secret: str, *,
                       max_hooks: int | None = None, api_key: str | None = None) -> dict[str, Any]: ...
    async def list_hooks(self, tenant: str, *, limit: int | None = None,
                         page: int = 1) -> list[dict[str, Any]]: ...
    async def count_hooks(self, tenant: str) -> int: ...
    async def hooks_for(self, tenant: str, event: str) -> list[dict[str, Any]]: ...
    async def delete_hook(self, tenant: str, hook_id: str) -> bool: ...
    # webhook outbox: only due rows are read; bodies only of the rows claimed
    async def enqueue(self, hook_id: str, call_id: str, event: str, body: bytes, *,
                      now: float | None = None) -> int: ...
    async def pending_deliveries(self, limit: int) -> list[dict[str, Any]]: ...
    async def due_heads(self, now: float, *, per_hook: int, per_tenant: int) -> list[dict[str, Any]]: ...
    async def claim(self, owner: str, ids: list[int], now: float, lease: float) -> list[dict[str, Any]]: ...
    async def release_claims(self, owner: str) -> None: ...
    async def has_due(self, now: float) -> bool: ...
    async def next_due_at(self, after: float) -> float | None: ...
    async def defer_hook(self, hook_id: str, until: float, now: float) -> None: ...
    async def mark_delivered(self, delivery_id: int) -> None: ...
    async def mark_retry(self, delivery_id: int, attempts: int, next_attempt_at: float,
                         error: str) -> None: ...
    async def mark_dead(self, delivery_id: int, error: str) -> None: ...
    async def purge_finished(self, before: float, limit: int) -> int: ...
    async def outbox_counts(self) -> dict[str, int]: ...
    async def hook_stats(self, tenant: str) -> dict[str, dict[str, Any]]: ...
    async def retry_dead(self, tenant: str, hook_id: str) -> int | None: ...
    async def pending_by_tenant(self) -> dict[str, int]: ...
    async def close(self) -> None: ...
