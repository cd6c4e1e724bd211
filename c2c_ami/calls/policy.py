"""What a tenant may dial and show: the do-not-call list and the caller-ID allow-list.

Both are checked before anything reaches the PBX, so a refused click rings nothing.

The do-not-call list is the carrier's ``/v1/blacklist``: per tenant, in the store (the truth
for every instance of a cluster: a number listed on one instance is refused on all of them at
the next click, with no cache to invalidate), plus ``calls.blacklist`` from the config (in
memory, per tenant). Numbers are compared in one form (``numbers.number_key``: E.164 by the
tenant's ``default_region``), so ``0899990988``, ``+84899990988`` and ``84899990988`` are one
number in VN. A click costs one lookup on the store's unique index, whatever the list's size
(on a store shared by several instances, inside the click's one claim statement).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Tenant
from ..errors import BlacklistEntryNotFound, CallerIdNotAllowed, PhoneBlacklisted
from ..numbers import is_possible, number_key
from ..store import Storage, store_needed

MAX_ENTRIES_PER_REQUEST = 1000      # POST or DELETE /v1/blacklist: numbers in one body
DUPLICATE = "phone_number is duplicate"          # the carrier's words
INVALID = "phone_number is invalid"
NOT_LISTED = "phone_number is not in the blacklist"


def listed_refusal() -> PhoneBlacklisted:
    return PhoneBlacklisted("phone: this number is on the do-not-call list")


@dataclass(frozen=True)
class Listing:
    """One entry as the carrier shows it."""
    id: str
    phone_number: str
    description: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> Listing:
        return cls(row["id"], row["phone_number"], row["description"])

    def carrier(self) -> dict[str, str]:
        return {"id": self.id, "phone_number": self.phone_number, "description": self.description}


@dataclass(frozen=True)
class BulkResult:
    """A POST or DELETE: the numbers done (as given), the others with why (the carrier's
    ``{phone: reason}``)."""
    success: list[str]
    fail: list[dict[str, str]]


class DialPolicy:
    """The rules, over the store; one per app."""

    def __init__(self, store: Storage) -> None:
        self.store = store

    # -- at each click (and transfer) --------------------------------------------------------
    async def check_number(self, tenant: Tenant, phone: str) -> None:
        """PhoneBlacklisted if ``phone`` is on the tenant's list or the global one."""
        if await self.is_listed(tenant.domain, self.store_key(tenant, phone)):   # store down: 503,
            raise listed_refusal()                                              # never a guess

    async def is_listed(self, tenant: str, key: str) -> bool:
        """Whether the store lists ``key`` (a ``store_key``) for ``tenant``."""
        with store_needed():
            return await self.store.is_blacklisted(tenant, key)

    @staticmethod
    def store_key(tenant: Tenant, phone: str) -> str:
        """PhoneBlacklisted if ``phone`` is on the config's list (``calls.blacklist``); else
        its compared form, to look up in the store (a click on a shared store does it with its
        claim: ``Storage.claim_click``)."""
        key = number_key(phone, tenant.default_region)
        if key in tenant.blacklist:
            raise listed_refusal()
        return key

    @staticmethod
    def check_caller_ids(tenant: Tenant, ext: str, src_cid_number: str | None, dest_cid_number: str | None) -> None:
        """With ``caller_ids`` set, a caller-ID number the request gives must be one of them, a
        match of one of its patterns, or a hotline of the tenant; the defaults (the extension
        shown to its own phone, the hotline sent to the number) always pass."""
        allowed = tenant.caller_ids
        if allowed is None:
            return
        hotlines = {number_key(h, tenant.default_region) for h in tenant.hotlines}
        for name, number, default in (("src_cid_number", src_cid_number, ext),
                                      ("dest_cid_number", dest_cid_number, None)):
            if number is None or number == default:
                continue
            key = number_key(number, tenant.default_region)
            if key in allowed.numbers or key in hotlines or any(p.fullmatch(number) for p in allowed.patterns):
                continue
            raise CallerIdNotAllowed(f"{name}: this caller ID is not one of the tenant's caller_ids or hotlines")

    # -- the list itself ---------------------------------------------------------------------
    async def add(self, tenant: Tenant, entries: list[tuple[str, str]]) -> BulkResult:
        """List ``(phone_number, description)`` entries; invalid and duplicate numbers (already
        listed, or twice in ``entries``) fail with the carrier's reasons."""
        fail: list[dict[str, str]] = []
        wanted: dict[str, tuple[str, str]] = {}
        for given, description in entries:
            if not is_possible(given, tenant.default_region):
                fail.append({given: INVALID})
                continue
            key = number_key(given, tenant.default_region)
            if key in wanted:
                fail.append({given: DUPLICATE})
                continue
            wanted[key] = (given, description)
        with store_needed():
            added = await self.store.add_blacklisted(
                tenant.domain, [(key, given, description) for key, (given, description) in wanted.items()])
        fail += [{given: DUPLICATE} for key, (given, _) in wanted.items() if key not in added]
        return BulkResult([given for key, (given, _) in wanted.items() if key in added], fail)

    async def remove(self, tenant: Tenant, phones: list[str]) -> BulkResult:
        fail: list[dict[str, str]] = []
        keys: dict[str, str] = {}
        for given in phones:
            if not is_possible(given, tenant.default_region):
                fail.append({given: INVALID})
            else:
                keys.setdefault(number_key(given, tenant.default_region), given)
        with store_needed():
            removed = await self.store.remove_blacklisted(tenant.domain, list(keys))
        fail += [{given: NOT_LISTED} for key, given in keys.items() if key not in removed]
        return BulkResult([given for key, given in keys.items() if key in removed], fail)

    async def listing(self, tenant: Tenant, *, limit: int, offset: int) -> tuple[list[Listing], int]:
        with store_needed():
            rows, total = await self.store.list_blacklisted(tenant.domain, limit=limit, offset=offset)
        return [Listing.of(r) for r in rows], total

    async def entry(self, tenant: Tenant, id_or_phone: str) -> Listing:
        """By its id, or by its number in any of its forms."""
        key = number_key(id_or_phone, tenant.default_region)
        with store_needed():
            row = await self.store.get_blacklisted(tenant.domain, id_or_phone, key)
        if row is None:
            raise BlacklistEntryNotFound("no blacklist entry with this id or phone number")
        return Listing.of(row)
