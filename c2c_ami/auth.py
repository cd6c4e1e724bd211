"""Bearer tokens -> tenant (and, for an extension-scoped token, the one extension).

Two kinds of Bearer token are accepted:

* static tokens (``tenants[].tokens``), held only as SHA-256 digests (the config may store
  ``sha256:<hex>``); the presented token's digest is compared with every known digest in
  constant time, with no early exit, so response time does not reveal how close a guess was;
* issued tokens (``POST /v1/auth/token``, in exchange for one of ``tenants[].api_keys``):
  ``c2c1.<payload>.<mac>``, both parts base64url without padding, the payload a JSON object
  ``{"d": tenant domain, "e": extension (only in an extension-scoped token), "x": expiry in
  unix seconds, "i": random id, "k": key id}`` and the mac HMAC-SHA256 over ``c2c1.<payload>``
  with ``auth.signing_secret``. Any instance configured with the same secret verifies them,
  with no shared state; ``auth.signing_secrets_previous`` still verify (rotation). The key id
  is HMAC-SHA256(signing secret, api key digest), cut to 12 bytes: a token stops working when
  the api key it was issued for is removed from the config, and it reveals nothing about the key.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import AuthConfig, Tenant, token_digest
from .errors import InvalidParams, Unauthorized

log = logging.getLogger("c2c_ami.auth")

TOKEN_PREFIX = "c2c1"
MAX_ISSUED_TOKEN = 512          # characters; issued tokens are ~150


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, the rate-limit key (a token's digest, never logged) and,
    for an extension-scoped issued token, the only extension it may act for."""
    tenant: Tenant
    token_key: bytes
    ext: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires: int                    # unix seconds
    user_id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict: only the one spelling ``_b64`` gives (the decoder ignores a last character's
    spare bits, so two spellings of one mac would otherwise both verify)."""
    if not text or not text.isascii():
        raise ValueError("not base64url")
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


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


def check_bearer(authorization: str | None, expected: bytes) -> None:
    """One fixed token (``metrics.token``), given by its digest, compared in constant time."""
    if not hmac.compare_digest(token_digest(bearer_token(authorization)), expected):
        raise Unauthorized("invalid token")


class TokenAuthority:
    """Static tokens and api keys by digest; issues and verifies signed tokens. ``clock``
    (unix seconds) is the one time source for expiry, replaceable in tests."""

    def __init__(self, tenants: tuple[Tenant, ...], auth: AuthConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        auth = auth or AuthConfig()
        self._entries = [(digest, tenant) for tenant in tenants for digest in tenant.token_digests]
        self._keys = [(digest, tenant) for tenant in tenants for digest in tenant.api_key_digests]
        self._tenants = {tenant.domain: tenant for tenant in tenants}
        self.ttl = auth.token_ttl
        self.clock = clock
        if auth.signing_secret:
            self._secrets = [s.encode("utf-8") for s in (auth.signing_secret, *auth.signing_secrets_previous)]
        else:
            self._secrets = [secrets.token_bytes(32)]
            if self._keys:
                log.warning("auth.signing_secret is not set: tokens issued by POST /v1/auth/token are "
                            "signed with a random secret made at start, so they stop working when this "
                            "process restarts and no other instance accepts them")

    def authenticate(self, authorization: str | None) -> Principal:
        """The tenant of an ``Authorization: Bearer <token>`` header, or Unauthorized."""
        token = bearer_token(authorization)
        digest = token_digest(token)
        found: Tenant | None = None
        for known, tenant in self._entries:
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is not None:
            return Principal(found, digest)
        if token.startswith(TOKEN_PREFIX + "."):
            return self._verify(token)
        raise Unauthorized("invalid token")

    # -- api keys and issued tokens -----------------------------------------------------------

    def tenant_of_api_key(self, api_key: str | None) -> tuple[Tenant, bytes]:
        """The tenant of an api key and the key's digest, compared like static tokens (every
        digest, constant time, no early exit); Unauthorized with one message for any miss
        (an empty or missing key too)."""
        if not api_key:
            raise Unauthorized("invalid api_key")
        digest = token_digest(api_key)
        found: Tenant | None = None
        for known, tenant in self._keys:
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is None:
            raise Unauthorized("invalid api_key")
        return found, digest

    def issue(self, tenant: Tenant, key_digest: bytes, ext: str | None = None) -> IssuedToken:
        """A token for ``tenant`` (only for ``ext`` if given), valid ``auth.token_ttl`` seconds."""
        expires = int(self.clock() + self.ttl)
        claims: dict[str, object] = {"d": tenant.domain, "x": expires, "i": _b64(secrets.token_bytes(12)),
                                     "k": _b64(self._key_id(self._secrets[0], key_digest))}
        if ext is not None:
            claims["e"] = ext
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        signed = f"{TOKEN_PREFIX}.{payload}"
        mac = _b64(hmac.new(self._secrets[0], signed.encode("ascii"), hashlib.sha256).digest())
        return IssuedToken(f"{signed}.{mac}", expires, user_id_of(tenant))

    @staticmethod
    def _key_id(secret: bytes, key_digest: bytes) -> bytes:
        return hmac.new(secret, b"key-id\0" + key_digest, hashlib.sha256).digest()[:12]

    def _verify(self, token: str) -> Principal:
        """An issued token's principal: the mac first (by any known secret), then the claims."""
        invalid = Unauthorized("invalid token")
        if len(token) > MAX_ISSUED_TOKEN:
            raise invalid
        parts = token.split(".")
        if len(parts) != 3:
            raise invalid
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        try:
            mac = _unb64(parts[2])
        except (ValueError, binascii.Error):
            raise invalid from None
        secret = None
        for candidate in self._secrets:         # every one, so timing tells nothing either
            if hmac.compare_digest(hmac.new(candidate, signed, hashlib.sha256).digest(), mac):
                secret = candidate
        if secret is None:
            raise invalid
        try:                                    # signed by us: a bad shape is a bug, still 401
            claims = json.loads(_unb64(parts[1]))
            domain, expires, key_id = claims["d"], claims["x"], _unb64(claims["k"])
            ext = claims.get("e")
        except (ValueError, binascii.Error, KeyError, TypeError):
            raise invalid from None
        tenant = self._tenants.get(domain) if isinstance(domain, str) else None
        if tenant is None or not isinstance(expires, int) or (ext is not None and (
                not isinstance(ext, str) or not tenant.extensions.fullmatch(ext))):
            raise invalid
        if not any(hmac.compare_digest(self._key_id(secret, d), key_id) for d in tenant.api_key_digests):
            raise invalid                       # its api key was removed from the config
        if self.clock() >= expires:
            raise Unauthorized("token expired")
        # one rate-limit bucket per tenant (per tenant + ext when scoped): issuing many
        # tokens does not multiply the rate
        bucket = hashlib.sha256(f"issued\0{tenant.domain}\0{ext or ''}".encode()).digest()
        return Principal(tenant, bucket, ext)


def user_id_of(tenant: Tenant) -> str:
    """``user_id`` of POST /v1/auth/token: the tenant's domain (stable, and not a secret)."""
    return tenant.domain
