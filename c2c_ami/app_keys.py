"""Typed application keys: what the app factory puts in the app, for handlers to take out."""
from __future__ import annotations

from aiohttp import web

from .ami import AmiClient
from .auth import TokenAuthority
from .calls import CallRegistry
from .config import Config
from .guards import RateLimiter, SingleFlight
from .metrics import Metrics
from .service import CallService
from .storage import Storage
from .webhooks import WebhookNotifier

CONFIG = web.AppKey("config", Config)
AUTH = web.AppKey("auth", TokenAuthority)
METRICS = web.AppKey("metrics", Metrics)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
DUPLICATES = web.AppKey("duplicates", SingleFlight)
IDEMPOTENCY = web.AppKey("idempotency", SingleFlight)
AMI = web.AppKey("ami", AmiClient)
REGISTRY = web.AppKey("registry", CallRegistry)
SERVICE = web.AppKey("service", CallService)
STORAGE = web.AppKey("storage", Storage)
WEBHOOKS = web.AppKey("webhooks", WebhookNotifier)
