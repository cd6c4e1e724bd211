"""Webhook subscriptions of a tenant: register, list, remove (``/v1/event``)."""
from __future__ import annotations

import secrets
from typing import Any

from ..errors import HookNotFound
from ..store import Storage


class Subscriptions:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def add(self, tenant: str, url: str, events: list[str], secret: str | None) -> dict[str, Any]:
        """The new hook with its signing secret (generated when not given): the only time
        the secret is shown."""
        secret = secret or secrets.token_urlsafe(32)
        hook = await self.storage.add_hook(tenant, url, events, secret)
        return {**hook, "secret": secret}

    async def list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's hooks, without their secrets."""
        return await self.storage.list_hooks(tenant)

    async def remove(self, tenant: str, hook_id: str) -> None:
        if not await self.storage.delete_hook(tenant, hook_id):
            raise HookNotFound("no webhook with this id")
