"""Bearer tokens -> tenant.

Tokens are held only as SHA-256 digests (the config may store ``sha256:<hex>``), and the
presented token's digest is compared with every known digest in constant time, with no
early exit, so response time does not reveal how close a guess was.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..config import Tenant, token_digest
from ..errors import InvalidParams, Unauthorized


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, and the token's digest (the rate-limit key; never logged)."""
    tenant: Tenant
    token_key: bytes


def bearer_token(authorization: str | None) -> str:
    """The token of ``Authorization: Bearer <token>``: Unauthorized if there is none,
    InvalidParams if the header is not printable ASCII."""
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    if not authorization.isascii() or not authorization.isprintable():
        # bytes that are not text (aiohttp keeps them as surrogates): a broken client
        raise InvalidParams("Authorization: must be printable ASCII (Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization header must be: Bearer <token>")
    return token


def check_bearer(authorization: str | None, expected: str) -> None:
    """One fixed token (``metrics.token``), compared as digests in constant time."""
    if not hmac.compare_digest(token_digest(bearer_token(authorization)), token_digest(expected)):
        raise Unauthorized("invalid token")


class TokenAuthority:
    def __init__(self, tenants: tuple[Tenant, ...]) -> None:
        self._entries = [(digest, tenant) for tenant in tenants for digest in tenant.token_digests]

    def authenticate(self, authorization: str | None) -> Principal:
        """The tenant of an ``Authorization: Bearer <token>`` header, or Unauthorized."""
        digest = token_digest(bearer_token(authorization))
        found: Tenant | None = None
        for known, tenant in self._entries:
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is None:
            raise Unauthorized("invalid token")
        return Principal(found, digest)
