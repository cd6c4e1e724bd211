"""Scroll ids of ``GET /v1/cdr``: stateless, signed cursors.

A scroll id says where the last batch ended -- the ``time_started`` and ``call_id`` of its last
row (CDRs are listed newest first, ties by call_id) -- and which filters and batch size the
scroll was started with. It is ``<payload>.<mac>``, both base64url without padding: the
payload a JSON object, the mac HMAC-SHA256 (cut to 16 bytes) over the tenant's domain and
the payload. Nothing is kept on the server, so any instance answers the next batch.

The tenant always comes from the request's token, never from the scroll id: a scroll id
made for another tenant (or edited, or garbled) fails its mac and is INVALID_PARAMS.

The mac's key comes from ``auth.signing_secret`` (``auth.signing_secrets_previous`` still
verify); when that is not set, from the digests of every tenant's tokens and api keys --
secret, and the same on every instance that shares the configuration.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .calls.requests import CdrQuery
from .config import Config
from .errors import InvalidParams

MAX_SCROLL_ID = 1024            # characters; a scroll id is ~200
_FILTERS = tuple(CdrQuery().filters())   # every filter a scroll carries on, and nothing else


@dataclass(frozen=True)
class ScrollPosition:
    """Where a scroll continues: after (``time_started``, ``call_id``), newest first."""
    time_started: str
    call_id: str
    filters: dict[str, str | None]
    limit: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


class ScrollCodec:
    def __init__(self, secrets: list[bytes]) -> None:
        if not secrets:
            raise ValueError("a scroll codec needs at least one secret")
        self._keys = [hmac.new(s, b"c2c-scroll-id", hashlib.sha256).digest() for s in secrets]

    @classmethod
    def for_config(cls, config: Config) -> ScrollCodec:
        auth = config.auth
        if auth.signing_secret:
            return cls([s.encode("utf-8") for s in (auth.signing_secret, *auth.signing_secrets_previous)])
        digests = sorted(d for t in config.tenants for d in (*t.token_digests, *t.api_key_digests))
        return cls([hashlib.sha256(b"c2c-scroll\0" + b"".join(digests)).digest()])

    def _mac(self, key: bytes, tenant: str, payload: str) -> bytes:
        return hmac.new(key, f"{tenant}\0{payload}".encode(), hashlib.sha256).digest()[:16]

    def encode(self, tenant: str, position: ScrollPosition) -> str:
        claims = {"t": position.time_started, "c": position.call_id, "n": position.limit,
                  "f": {k: v for k, v in position.filters.items() if v is not None}}
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{payload}.{_b64(self._mac(self._keys[0], tenant, payload))}"

    def decode(self, tenant: str, scroll_id: str) -> ScrollPosition:
        """The position of a scroll id this gateway made for ``tenant``; else InvalidParams."""
        invalid = InvalidParams("scroll_id: not a scroll id of this listing (give the scroll_id "
                                "of the previous answer, unchanged)")
        if len(scroll_id) > MAX_SCROLL_ID or not scroll_id.isascii():
            raise invalid
        payload, _, mac_text = scroll_id.partition(".")
        try:
            mac = _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise invalid from None
        if not payload or not any([hmac.compare_digest(self._mac(key, tenant, payload), mac)
                                   for key in self._keys]):
            raise invalid
        try:                                    # signed by us: a bad shape is a bug, still refused
            claims: Any = json.loads(_unb64(payload))
            position = ScrollPosition(claims["t"], claims["c"], dict(claims["f"]), claims["n"])
        except (ValueError, binascii.Error, KeyError, TypeError):
            raise invalid from None
        if not (isinstance(position.time_started, str) and isinstance(position.call_id, str)
                and isinstance(position.limit, int) and set(position.filters) <= set(_FILTERS)
                and all(isinstance(v, str) for v in position.filters.values())):
            raise invalid
        return ScrollPosition(position.time_started, position.call_id,
                              {k: position.filters.get(k) for k in _FILTERS}, position.limit)


__all__ = ["MAX_SCROLL_ID", "ScrollCodec", "ScrollPosition"]
