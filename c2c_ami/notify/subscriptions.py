"""Webhook subscriptions of a tenant: register (within the cap, to a URL the egress policy
allows), list by pages, remove (``/v1/event``); each answers STORE_UNAVAILABLE while the store
does not."""
from __future__ import annotations

import builtins
import secrets
from typing import Any

from ..errors import HookNotFound, InvalidParams, TooManyHooks
from ..store import HookLimitReached, Storage, store_needed
from .egress import EgressPolicy


class Subscriptions:
    def __init__(self, storage: Storage, *, max_hooks: int = 100, egress: EgressPolicy | None = None) -> None:
        self.storage = storage
        self.max_hooks = max_hooks
        self.egress = egress or EgressPolicy()

    async def add(self, tenant: str, url: str, events: list[str], secret: str | None, *,
                  api_key: str | None = None, url_field: str = "url") -> dict[str, Any]:
        """The new hook with its signing secret (generated when not given): the only time
        the secret is shown. ``api_key``: the receiver's, sent with every delivery;
        ``url_field``: the URL's name in the request, for the egress refusal."""
        refusal = self.egress.url_refusal(url)
        if refusal is not None:
            raise InvalidParams(f"{url_field}: {refusal}")
        secret = secret or secrets.token_urlsafe(32)
        try:
            with store_needed():
                hook = await self.storage.add_hook(tenant, url, events, secret, max_hooks=self.max_hooks,
                                                   api_key=api_key)
        except HookLimitReached:
            raise TooManyHooks(f"a tenant may have at most {self.max_hooks} webhooks; "
                               "delete one first (webhooks.max_hooks_per_tenant)") from None
        return {**hook, "secret": secret}

    async def list(self, tenant: str, *, limit: int, page: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the tenant's hooks (oldest first, without secrets, with the receivers'
        api keys) and how many it has."""
        with store_needed():
            return await self.storage.list_hooks(tenant, limit=limit, page=page), await self.storage.count_hooks(tenant)

    async def remove(self, tenant: str, hook_id: str) -> None:
        with store_needed():
            removed = await self.storage.delete_hook(tenant, hook_id)
        if not removed:
            raise HookNotFound("no webhook with this id")

    async def deliveries(self, tenant: str) -> builtins.list[dict[str, Any]]:
        """Every hook of the tenant (oldest first) with its deliveries ``pending``,
        ``delivered`` and ``dead`` still in the outbox and its ``last_error``."""
        with store_needed():
            hooks = await self.storage.list_hooks(tenant)
            stats = await self.storage.hook_stats(tenant)
        empty = {"pending": 0, "delivered": 0, "dead": 0, "last_error": None}
        return [{**hook, **stats.get(hook["id"], empty)} for hook in hooks]

    async def retry_dead(self, tenant: str, hook_id: str) -> int:
        """Queue the hook's dead deliveries again; how many."""
        with store_needed():
            retried = await self.storage.retry_dead(tenant, hook_id)
        if retried is None:
            raise HookNotFound("no webhook with this id")
        return retried
