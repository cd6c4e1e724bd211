"""Recordings: where each call's WAV file is, and the signed links that reach it.

A recorded call is recorded by Asterisk (MixMonitor on the customer's channel, both
directions mixed) into ``<recording.dir>/<call_id>.wav``; the gateway reads the same file at
``<recording.local_dir>/<call_id>.wav`` (a shared directory or a mount when Asterisk runs on
another host). A link is ``{public_url}/v1/recording/{call_id}?exp=<unix>&sig=<hex>``: an
HMAC-SHA256 over ``call_id:exp`` with the gateway's signing key, valid until ``exp``, usable
without a token (a CRM puts it in an audio player). With ``url_template`` the link is the
shop's own URL for the file (``https://pbx1.example/rec/{call_id}.wav``), and the gateway
serves nothing.

The signing key is ``auth.signing_secret`` (``auth.signing_secrets_previous`` still verify),
else one derived from every tenant's token and api key digests: secret, and the same on every
instance that shares the configuration, as scroll ids are.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from ..config import Config, RecordingConfig

SIGNATURE_HEX = 32          # characters of the link's signature (128 bits)


class RecordingLinks:
    def __init__(self, keys: Sequence[bytes], public_url: str, clock: Callable[[], float] = time.time) -> None:
        self._keys = list(keys)
        self.public_url = public_url.rstrip("/")
        self.clock = clock

    @classmethod
    def for_config(cls, config: Config) -> RecordingLinks:
        auth = config.auth
        if auth.signing_secret:
            keys = [s.encode("utf-8") for s in (auth.signing_secret, *auth.signing_secrets_previous)]
        else:
            digests = sorted(d for t in config.tenants for d in (*t.token_digests, *t.api_key_digests))
            keys = [hashlib.sha256(b"c2c-recording\0" + b"".join(digests)).digest()]
        public = config.api.public_url or f"http://{config.listen.host}:{config.listen.port}"
        return cls(keys, public)

    def url(self, record: dict[str, Any], recording: RecordingConfig) -> str:
        """The link a CDR or webhook carries: "" when the call has no recording."""
        call_id = str(record.get("call_id") or "")
        if not record.get("recorded") or not call_id:
            return ""
        if recording.url_template:
            return recording.url_template.replace("{call_id}", quote(call_id, safe=""))
        expires = int(self.clock() + recording.url_ttl)
        signature = self._sign(self._keys[0], call_id, expires)
        return f"{self.public_url}/v1/recording/{call_id}?exp={expires}&sig={signature}"

    def verify(self, call_id: str, expires: str, signature: str) -> str | None:
        """None if the link is good; else why not (expired, or not a link this gateway made)."""
        if not expires.isdigit() or len(expires) > 12 or len(signature) != SIGNATURE_HEX:
            return "not a recording link of this gateway"
        if not any(hmac.compare_digest(self._sign(key, call_id, int(expires)), signature) for key in self._keys):
            return "not a recording link of this gateway"
        if int(expires) < self.clock():
            return "the link has expired"
        return None

    @staticmethod
    def _sign(key: bytes, call_id: str, expires: int) -> str:
        return hmac.new(key, f"{call_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:SIGNATURE_HEX]


def pbx_file(recording: RecordingConfig, call_id: str) -> str:
    """The file as Asterisk writes it (MixMonitor's File)."""
    return f"{recording.dir.rstrip('/')}/{call_id}.wav"


def local_file(directory: str, call_id: str) -> str:
    """The same file as the gateway reads it, in ``directory`` (a ``recording.local_dir``)."""
    return os.path.join(directory, f"{call_id}.wav")
